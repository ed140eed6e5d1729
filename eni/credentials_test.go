package eni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustWriteFile(tb testing.TB, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "credentials.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func clearCredentialEnv(tb testing.TB) {
	tb.Helper()
	for _, group := range [][]string{credentialEnv.id, credentialEnv.secret, credentialEnv.token} {
		for _, n := range group {
			tb.Setenv(n, "")
		}
	}
}

func TestLoadCredentials_File(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    Credentials
		wantErr string
	}{
		{"pair", `{"AccessKeyId":"LTAIa","AccessKeySecret":"s3cr3t"}`, Credentials{AccessKeyID: "LTAIa", AccessKeySecret: "s3cr3t"}, ""},
		{"sts", `{"AccessKeyId":"STS.a","AccessKeySecret":"s","SecurityToken":"tok"}`, Credentials{AccessKeyID: "STS.a", AccessKeySecret: "s", SecurityToken: "tok"}, ""},
		{"sts with expiry", `{"AccessKeyId":"STS.a","AccessKeySecret":"s","SecurityToken":"tok","Expiration":"2999-12-01T08:00:00Z"}`,
			Credentials{AccessKeyID: "STS.a", AccessKeySecret: "s", SecurityToken: "tok", Expiration: time.Date(2999, 12, 1, 8, 0, 0, 0, time.UTC)}, ""},
		{"expired", `{"AccessKeyId":"STS.a","AccessKeySecret":"s","SecurityToken":"tok","Expiration":"2001-12-01T08:00:00Z"}`, Credentials{}, "token expired"},
		{"bad expiry", `{"AccessKeyId":"STS.a","AccessKeySecret":"s","Expiration":"tomorrow"}`, Credentials{}, "RFC 3339"},
		{"missing secret", `{"AccessKeyId":"LTAIa"}`, Credentials{}, "missing AccessKeySecret"},
		{"missing id", `{"AccessKeySecret":"s"}`, Credentials{}, "missing AccessKeyId"},
		{"not json", `AccessKeyId=x`, Credentials{}, "want JSON"},
		{"not json, secret not quoted", `{"AccessKeyId":"LTAIa","AccessKeySecret":s3cr3t-in-error}`, Credentials{}, "syntax error at byte"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustWriteFile(t, tc.content)
			got, err := LoadCredentials(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want one naming %s and %q", err, p, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("err = %v quotes the file's secret", err)
				}
				return
			}
			if err != nil || !got.Expiration.Equal(tc.want.Expiration) || got.AccessKeyID != tc.want.AccessKeyID ||
				got.AccessKeySecret != tc.want.AccessKeySecret || got.SecurityToken != tc.want.SecurityToken {
				t.Fatalf("LoadCredentials = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	t.Run("absent file", func(t *testing.T) {
		if _, err := LoadCredentials(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("no error for a missing file")
		}
	})
}

func TestLoadCredentials_Env(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    Credentials
		wantErr string
	}{
		{"alibaba names", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "b"}, Credentials{AccessKeyID: "a", AccessKeySecret: "b"}, ""},
		{"alicloud names", map[string]string{"ALICLOUD_ACCESS_KEY": "c", "ALICLOUD_SECRET_KEY": "d"}, Credentials{AccessKeyID: "c", AccessKeySecret: "d"}, ""},
		{"alibaba wins", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "b", "ALICLOUD_ACCESS_KEY": "c"}, Credentials{AccessKeyID: "a", AccessKeySecret: "b"}, ""},
		{"token", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "b", "ALIBABA_CLOUD_SECURITY_TOKEN": "t"}, Credentials{AccessKeyID: "a", AccessKeySecret: "b", SecurityToken: "t"}, ""},
		{"none", nil, Credentials{}, "none in the environment"},
		{"half", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "a"}, Credentials{}, "missing AccessKeySecret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearCredentialEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := LoadCredentials("")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("LoadCredentials = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestReadCredentialsFile_Mode(t *testing.T) {
	cases := []struct {
		mode    os.FileMode
		wantErr bool
	}{
		{0o600, false},
		{0o400, false},
		{0o640, true},
		{0o644, true},
		{0o604, true},
		{0o620, true},
		{0o602, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			p := mustWriteFile(t, `{"AccessKeyId":"LTAIa","AccessKeySecret":"s3cr3t"}`)
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := ReadCredentialsFile(p)
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInsecureCredentials) || !strings.Contains(err.Error(), "chmod 600 "+p) {
				t.Fatalf("err = %v, want ErrInsecureCredentials naming the fix for %s", err, p)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		if _, err := ReadCredentialsFile(t.TempDir()); !errors.Is(err, ErrInsecureCredentials) {
			t.Fatalf("err = %v, want a refusal", err)
		}
	})
}

// Ensure no way of printing, logging or serialising credentials shows the
// secret, the token or the whole AccessKeyId.
func TestCredentials_Redacted(t *testing.T) {
	c := Credentials{AccessKeyID: "STS.NUabcdefghijklmnop", AccessKeySecret: "s3cr3t-value", SecurityToken: "token-value-xyz",
		Expiration: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("creds", "c", c, "ptr", &c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("creds", "c", c)
	js, err := json.Marshal(struct{ C Credentials }{c})
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]string{
		"String": c.String(), "%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"%s ptr": fmt.Sprintf("%s", &c), "nested %+v": fmt.Sprintf("%+v", struct{ C Credentials }{c}),
		"json": string(js), "slog": logged.String(),
	}
	for name, out := range outs {
		for _, secret := range []string{c.AccessKeyID, c.AccessKeySecret, c.SecurityToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%s = %s: shows %q", name, out, secret)
			}
		}
		if name != "slog" && !strings.Contains(out, "STS.") {
			t.Errorf("%s = %s: hides even the key's kind", name, out)
		}
	}
}
