module github.com/tripwire-sec/tripwire/contract

go 1.26.0
