package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// A Config may hold an AccessKey pair (access_key, access_secret). Printed,
// logged or marshalled, a Config shows neither: veni writes its
// configuration as the operator gave it (raw bytes), never from a Config,
// so nothing needs the secret back.

const redactedSecret = "<redacted>"

// redacted returns a copy of c without its secret and with the AccessKeyId
// cut to its first four characters.
func (c Config) redacted() Config {
	if c.AccessSecret != "" {
		c.AccessSecret = redactedSecret
	}
	if len(c.AccessKey) > 8 {
		c.AccessKey = c.AccessKey[:4] + "***"
	} else if c.AccessKey != "" {
		c.AccessKey = "***"
	}
	return c
}

// plain is Config without its methods, so the methods below can format it
// without calling themselves.
type plain Config

// String is the redacted config.
func (c Config) String() string { return fmt.Sprintf("%+v", plain(c.redacted())) }

// GoString is what %#v prints: the redacted config.
func (c Config) GoString() string { return fmt.Sprintf("config.Config%+v", plain(c.redacted())) }

// MarshalJSON writes the redacted config.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(plain(c.redacted())) }

// LogValue is how slog prints a Config: the redacted JSON.
func (c Config) LogValue() slog.Value {
	b, err := c.MarshalJSON()
	if err != nil {
		return slog.StringValue("<config: " + err.Error() + ">")
	}
	return slog.StringValue(string(b))
}
