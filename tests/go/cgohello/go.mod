module example.com/hostscope/cgohello

go 1.19
