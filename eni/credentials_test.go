package eni

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"missing secret", `{"AccessKeyId":"LTAIa"}`, Credentials{}, "missing AccessKeySecret"},
		{"missing id", `{"AccessKeySecret":"s"}`, Credentials{}, "missing AccessKeyId"},
		{"not json", `AccessKeyId=x`, Credentials{}, "want JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustWriteFile(t, tc.content)
			got, err := LoadCredentials(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want one naming %s and %q", err, p, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
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

func TestCredentials_String(t *testing.T) {
	s := Credentials{AccessKeyID: "LTAIa", AccessKeySecret: "s3cr3t"}.String()
	if strings.Contains(s, "s3cr3t") || !strings.Contains(s, "LTAIa") {
		t.Fatalf("String() = %q: leaks the secret or hides the id", s)
	}
}
