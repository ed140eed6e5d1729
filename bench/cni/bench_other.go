//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

func run(context.Context, options, io.Writer, io.Writer) error {
	return errors.New("the CNI benchmark needs Linux (network namespaces)")
}
