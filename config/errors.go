package config

import "errors"

// ErrInvalid means the node configuration has a bad value. The message
// names the field.
var ErrInvalid = errors.New("invalid config")
