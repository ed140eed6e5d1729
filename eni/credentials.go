package eni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Credentials are an AccessKey pair, optionally with an STS token and the
// time that token expires.
//
// String, GoString, MarshalJSON and LogValue redact the secret and the
// token and shorten the AccessKeyId to a prefix, so printing, logging or
// serialising credentials by accident leaks nothing. Nothing reads them
// back from JSON: files are parsed by ReadCredentialsFile.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string    // empty for a long-term AccessKey
	Expiration      time.Time // zero: does not expire
}

const redacted = "<redacted>"

// redactKeyID shortens an AccessKeyId to a prefix that tells the kind of
// key ("LTAI", "STS.") without identifying it.
func redactKeyID(id string) string {
	if id == "" {
		return ""
	}
	if len(id) <= 8 {
		return "***"
	}
	return id[:4] + "***"
}

// String redacts the secret and the token.
func (c Credentials) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "AccessKeyId=%s AccessKeySecret=%s", redactKeyID(c.AccessKeyID), redactNonEmpty(c.AccessKeySecret))
	if c.SecurityToken != "" {
		fmt.Fprintf(&b, " SecurityToken=%s", redacted)
	}
	if !c.Expiration.IsZero() {
		fmt.Fprintf(&b, " Expiration=%s", c.Expiration.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// GoString is what %#v prints: the same redacted form.
func (c Credentials) GoString() string { return "eni.Credentials{" + c.String() + "}" }

// MarshalJSON writes the redacted form.
func (c Credentials) MarshalJSON() ([]byte, error) {
	v := struct {
		AccessKeyID     string     `json:"AccessKeyId"`
		AccessKeySecret string     `json:"AccessKeySecret"`
		SecurityToken   string     `json:"SecurityToken,omitempty"`
		Expiration      *time.Time `json:"Expiration,omitempty"`
	}{AccessKeyID: redactKeyID(c.AccessKeyID), AccessKeySecret: redactNonEmpty(c.AccessKeySecret)}
	if c.SecurityToken != "" {
		v.SecurityToken = redacted
	}
	if !c.Expiration.IsZero() {
		v.Expiration = &c.Expiration
	}
	return json.Marshal(v)
}

// LogValue is how slog prints credentials: redacted.
func (c Credentials) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("AccessKeyId", redactKeyID(c.AccessKeyID)), slog.Bool("sts", c.SecurityToken != "")}
	if !c.Expiration.IsZero() {
		attrs = append(attrs, slog.Time("Expiration", c.Expiration))
	}
	return slog.GroupValue(attrs...)
}

func redactNonEmpty(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// expired reports whether the credentials carry an expiry that has passed.
func (c Credentials) expired(now time.Time) bool {
	return !c.Expiration.IsZero() && !now.Before(c.Expiration)
}

// Environment variables read by LoadCredentials(""): the names of the
// Alibaba Cloud CLI and SDKs, then the older ALICLOUD_* names of the
// Terraform provider.
var credentialEnv = struct{ id, secret, token []string }{
	id:     []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY"},
	secret: []string{"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALICLOUD_SECRET_KEY"},
	token:  []string{"ALIBABA_CLOUD_SECURITY_TOKEN", "ALICLOUD_SECURITY_TOKEN"},
}

// CredentialsInEnv reports whether any credential variable is set, so a
// chain can tell "none in the environment" from "a broken pair".
func CredentialsInEnv() bool {
	return firstEnv(credentialEnv.id) != "" || firstEnv(credentialEnv.secret) != ""
}

// LoadCredentials reads credentials from a JSON file (see
// ReadCredentialsFile), or from the environment when path is empty. An
// incomplete pair is an error that names the missing field.
//
// May return an error wrapping ErrNoCredentials or ErrInsecureCredentials.
func LoadCredentials(path string) (Credentials, error) {
	if path != "" {
		return ReadCredentialsFile(path)
	}
	c := Credentials{
		AccessKeyID:     firstEnv(credentialEnv.id),
		AccessKeySecret: firstEnv(credentialEnv.secret),
		SecurityToken:   firstEnv(credentialEnv.token),
	}
	if c.AccessKeyID == "" && c.AccessKeySecret == "" {
		return Credentials{}, fmt.Errorf("credentials: none in the environment: %w (set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or pass a credentials file)", ErrNoCredentials)
	}
	if err := c.validate(); err != nil {
		return Credentials{}, fmt.Errorf("credentials from environment: %w", err)
	}
	return c, nil
}

// credentialsFile is the JSON shape of a credentials file: what Terway's
// addon token holds (in plain JSON), and what the instance RAM role answers.
type credentialsFile struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
	SecurityToken   string `json:"SecurityToken"`
	Expiration      string `json:"Expiration"`
}

func (f credentialsFile) credentials() (Credentials, error) {
	c := Credentials{AccessKeyID: f.AccessKeyID, AccessKeySecret: f.AccessKeySecret, SecurityToken: f.SecurityToken}
	if f.Expiration != "" {
		t, err := time.Parse(time.RFC3339, f.Expiration)
		if err != nil {
			return c, fmt.Errorf("Expiration %q: want RFC 3339 like 2026-12-01T08:00:00Z", f.Expiration)
		}
		c.Expiration = t
	}
	return c, c.validate()
}

// maxCredentialsFile bounds what is read from a credentials file.
const maxCredentialsFile = 64 << 10

// ReadCredentialsFile reads {"AccessKeyId", "AccessKeySecret",
// "SecurityToken", "Expiration"} from path. It refuses a file that group or
// others may read or write (see CheckPrivate), and a token that has already
// expired. The error names the path and never quotes the file.
//
// May return an error wrapping ErrInsecureCredentials, ErrNoCredentials (the
// token expired) or fs.ErrNotExist.
func ReadCredentialsFile(path string) (Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // the opened file, not whatever the path names by now
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	if err := CheckPrivate(path, fi); err != nil {
		return Credentials{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsFile))
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file %s: %w", path, err)
	}
	var raw credentialsFile
	if err := json.Unmarshal(data, &raw); err != nil {
		// Only the decoder's position, never the content: it is a secret.
		return Credentials{}, fmt.Errorf("credentials file %s: not valid JSON: %w (want JSON with AccessKeyId and AccessKeySecret)", path, jsonErrorWithoutContent(err))
	}
	c, err := raw.credentials()
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file %s: %w", path, err)
	}
	if c.expired(time.Now()) {
		return Credentials{}, fmt.Errorf("credentials file %s: token expired at %s: %w (whoever rotates this file has stopped)", path, c.Expiration.UTC().Format(time.RFC3339), ErrNoCredentials)
	}
	return c, nil
}

// jsonErrorWithoutContent keeps a decoding error's kind and offset but not
// the text it quotes.
func jsonErrorWithoutContent(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %s: want %s", te.Field, te.Type)
	}
	return errors.New("cannot decode")
}

// CheckPrivate refuses a file holding credentials that group or others may
// read or write (mode & 0o077 != 0), and anything but a regular file.
//
// May return an error wrapping ErrInsecureCredentials.
func CheckPrivate(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("credentials file %s is not a regular file (%s): %w", path, fi.Mode().Type(), ErrInsecureCredentials)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("credentials file %s has mode %04o, so group or others may read or change it: %w (chmod 600 %s)", path, perm, ErrInsecureCredentials, path)
	}
	return nil
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
