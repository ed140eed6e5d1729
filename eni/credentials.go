package eni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Credentials are an AccessKey pair, optionally with an STS token.
type Credentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
	SecurityToken   string `json:"SecurityToken,omitempty"`
}

// String hides the secret so that credentials can be logged by accident
// without leaking.
func (c Credentials) String() string {
	return fmt.Sprintf("AccessKeyId=%s AccessKeySecret=<redacted>", c.AccessKeyID)
}

// Environment variables read by LoadCredentials(""): the names of the
// Alibaba Cloud CLI and SDKs, then the older ALICLOUD_* names of the
// Terraform provider.
var credentialEnv = struct{ id, secret, token []string }{
	id:     []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY"},
	secret: []string{"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALICLOUD_SECRET_KEY"},
	token:  []string{"ALIBABA_CLOUD_SECURITY_TOKEN", "ALICLOUD_SECURITY_TOKEN"},
}

// LoadCredentials reads credentials from a JSON file
// ({"AccessKeyId": ..., "AccessKeySecret": ..., "SecurityToken": ...}), or
// from the environment when path is empty. An incomplete pair is an error
// that names the missing field.
func LoadCredentials(path string) (Credentials, error) {
	if path == "" {
		c := Credentials{
			AccessKeyID:     firstEnv(credentialEnv.id),
			AccessKeySecret: firstEnv(credentialEnv.secret),
			SecurityToken:   firstEnv(credentialEnv.token),
		}
		if c.AccessKeyID == "" && c.AccessKeySecret == "" {
			return Credentials{}, errors.New("credentials: none in the environment (set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or pass a credentials file)")
		}
		if err := c.validate(); err != nil {
			return Credentials{}, fmt.Errorf("credentials from environment: %w", err)
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return Credentials{}, fmt.Errorf("credentials file %s: %w (want JSON with AccessKeyId and AccessKeySecret)", path, err)
	}
	if err := c.validate(); err != nil {
		return Credentials{}, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return c, nil
}

func (c Credentials) validate() error {
	switch {
	case c.AccessKeyID == "":
		return errors.New("missing AccessKeyId")
	case c.AccessKeySecret == "":
		return errors.New("missing AccessKeySecret")
	}
	return nil
}

func firstEnv(names []string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
