//go:build !linux

package commands

import "errors"

func execInNetNS(string, []string) error {
	return errors.New("sim exec needs linux network namespaces")
}
