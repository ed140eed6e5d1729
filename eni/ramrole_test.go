package eni

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMetadata_RAMRoleCredentials(t *testing.T) {
	const answer = `{"AccessKeyId":"STS.abcdefghijkl","AccessKeySecret":"s3cr3tval","SecurityToken":"CAIStoken","Expiration":"2999-12-01T08:00:00Z","LastUpdated":"2999-12-01T02:00:00Z","Code":"Success"}`
	cases := []struct {
		name    string
		tree    map[string]string
		role    string
		wantID  string
		wantErr error
		errSays string
	}{
		{"listed role", map[string]string{"ram/security-credentials/": "NodeRole\n", "ram/security-credentials/NodeRole": answer}, "", "STS.abcdefghijkl", nil, ""},
		{"named role", map[string]string{"ram/security-credentials/Other": answer}, "Other", "STS.abcdefghijkl", nil, ""},
		{"no role", map[string]string{}, "", "", ErrNotFound, ""},
		{"empty listing", map[string]string{"ram/security-credentials/": "\n"}, "", "", ErrNotFound, "no role listed"},
		{"not success", map[string]string{"ram/security-credentials/R": `{"Code":"Failure","AccessKeySecret":"s3cr3tval"}`}, "R", "", nil, `Code "Failure"`},
		{"not json", map[string]string{"ram/security-credentials/R": `AccessKeySecret=s3cr3tval`}, "R", "", nil, "syntax error"},
		{"bad role name", map[string]string{}, "a/b", "", ErrInvalidParameter, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, withToken := range []bool{false, true} {
				m := mustMetadata(t, &fakeMetadata{tree: tc.tree, withToken: withToken})
				c, err := m.RAMRoleCredentials(context.Background(), tc.role)
				if tc.wantID != "" {
					if err != nil || c.AccessKeyID != tc.wantID || c.AccessKeySecret != "s3cr3tval" || c.SecurityToken != "CAIStoken" ||
						!c.Expiration.Equal(time.Date(2999, 12, 1, 8, 0, 0, 0, time.UTC)) {
						t.Fatalf("got %v, %v", c, err)
					}
					continue
				}
				if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errSays) {
					t.Fatalf("err = %v, want %v saying %q", err, tc.wantErr, tc.errSays)
				}
				if strings.Contains(err.Error(), "s3cr3tval") {
					t.Fatalf("err = %v quotes the answer", err)
				}
			}
		})
	}
}

func TestNewRAMRoleCredentials_NoRole(t *testing.T) {
	m := mustMetadata(t, &fakeMetadata{tree: map[string]string{}})
	_, err := NewRAMRoleCredentials(m, "").Credentials(context.Background())
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "no ram role") {
		t.Fatalf("err = %v, want ErrNoCredentials saying there is no role", err)
	}
}
