module github.com/veni-cni/veni/e2e/libcni100

go 1.26.8

require github.com/containernetworking/cni v1.1.2
