module example.com/hostscope/goid

go 1.19
