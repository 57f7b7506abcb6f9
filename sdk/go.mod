module github.com/switchyard/switchyard/sdk

go 1.26
