package eni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ramRolePath lists the instance's RAM role, and with the role's name
// appended serves its STS credentials.
const ramRolePath = "ram/security-credentials/"

// RAMRole returns the name of the RAM role attached to the instance.
//
// May return an error wrapping ErrNotFound when the instance has none.
func (m *Metadata) RAMRole(ctx context.Context) (string, error) {
	s, err := m.Get(ctx, ramRolePath)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(s) {
		if name := strings.TrimSuffix(strings.TrimSpace(line), "/"); name != "" {
			return name, nil
		}
	}
	return "", fmt.Errorf("metadata %s: no role listed: %w", ramRolePath, ErrNotFound)
}

// ramRoleAnswer is what ram/security-credentials/<role> returns.
type ramRoleAnswer struct {
	credentialsFile
	LastUpdated string `json:"LastUpdated"`
	Code        string `json:"Code"`
}

// RAMRoleCredentials returns the STS credentials the metadata service holds
// for role, or for the attached role when role is empty. The service renews
// them before they expire; RefreshingCredentials asks again in time.
//
// May return an error wrapping ErrNotFound when the instance has no such
// role.
func (m *Metadata) RAMRoleCredentials(ctx context.Context, role string) (Credentials, error) {
	if role == "" {
		var err error
		if role, err = m.RAMRole(ctx); err != nil {
			return Credentials{}, err
		}
	}
	if strings.ContainsAny(role, "/?#") {
		return Credentials{}, fmt.Errorf("ram role %q: %w (a role name has no / ? or #)", role, ErrInvalidParameter)
	}
	s, err := m.Get(ctx, ramRolePath+role)
	if err != nil {
		return Credentials{}, err
	}
	var a ramRoleAnswer
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return Credentials{}, fmt.Errorf("metadata ram role %s: %w", role, jsonErrorWithoutContent(err))
	}
	if a.Code != "Success" {
		// Code is a short status word, never a secret.
		return Credentials{}, fmt.Errorf("metadata ram role %s: Code %q, want Success", role, a.Code)
	}
	c, err := a.credentials()
	if err != nil {
		return Credentials{}, fmt.Errorf("metadata ram role %s: %w", role, err)
	}
	return c, nil
}

// NewRAMRoleCredentials returns a provider of the instance RAM role's STS
// credentials, read from md and fetched again before they expire. An empty
// role means the role the instance lists. The role name is looked up once.
//
// Its Credentials may return an error wrapping ErrNoCredentials when the
// instance has no RAM role.
func NewRAMRoleCredentials(md *Metadata, role string) *RefreshingCredentials {
	name := role // only fetch touches it, and fetches never run at once
	return newRefreshingCredentials("instance ram role", func(ctx context.Context) (Credentials, error) {
		if name == "" {
			r, err := md.RAMRole(ctx)
			if errors.Is(err, ErrNotFound) {
				return Credentials{}, fmt.Errorf("the instance has no ram role: %w: %w", ErrNoCredentials, err)
			}
			if err != nil {
				return Credentials{}, err
			}
			name = r
		}
		c, err := md.RAMRoleCredentials(ctx, name)
		if errors.Is(err, ErrNotFound) {
			return Credentials{}, fmt.Errorf("the instance has no ram role %q: %w: %w", name, ErrNoCredentials, err)
		}
		return c, err
	})
}
