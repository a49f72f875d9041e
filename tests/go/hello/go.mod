module example.com/hostscope/hello

go 1.19
