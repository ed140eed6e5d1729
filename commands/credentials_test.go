package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCredentialsCommand(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	cmd := newCredentialsCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCredentialsInstall(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "token-config")
	dst := filepath.Join(dir, "host", "credentials")
	const secret = "the-secret-value"
	if err := os.WriteFile(src, []byte(`{"AccessKeyId":"LTAIinstallkeyid","AccessKeySecret":"`+secret+`"}`), 0o400); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"install", []string{"install", "--from", src, "--to", dst}, "installed " + dst, ""},
		{"again", []string{"install", "--from", src, "--to", dst}, "up to date", ""},
		{"missing optional", []string{"install", "--from", src + ".nope", "--to", dst, "--optional"}, "nothing installed", ""},
		{"missing", []string{"install", "--from", src + ".nope", "--to", dst}, "", "no such file"},
		{"negative watch", []string{"install", "--from", src, "--to", dst, "--watch", "-1s"}, "", "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCredentialsCommand(t, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("out %q, err %v; want %q", out, err, tc.want)
			}
			if strings.Contains(out, secret) {
				t.Fatalf("output shows the secret: %q", out)
			}
		})
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("installed file: %v, %v; want mode 0600", fi, err)
	}
	if err := os.Chmod(src, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCredentialsCommand(t, "install", "--from", src, "--to", dst); err == nil || !strings.Contains(err.Error(), "chmod 600 "+src) {
		t.Fatalf("a readable source: err = %v, want a refusal with the fix", err)
	}
}
