package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

// Client talks to a running sim's control endpoint. It is safe for
// concurrent use.
type Client struct {
	State State // as the server published it
	token string
	http  *http.Client
}

// Connect returns a client of the live sim in dir. May return an error
// wrapping ErrNotRunning or ErrStateVersion.
func Connect(dir string) (*Client, error) {
	st, err := Running(dir)
	if err != nil {
		return nil, err
	}
	return NewClient(st)
}

// NewClient returns a client of the sim st describes, with the token from
// its directory.
func NewClient(st State) (*Client, error) {
	token, err := readToken(st.Dir)
	if err != nil {
		return nil, err
	}
	return &Client{State: st, token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// Live returns the cloud and the nodes with their daemons; with health,
// the server also runs "veni status" in every node, which takes longer.
func (c *Client) Live(ctx context.Context, health bool) (Live, error) {
	path := pathState
	if health {
		path += "?health=1"
	}
	var l Live
	err := c.Do(ctx, http.MethodGet, path, nil, &l)
	return l, err
}

// SetFault applies a change of the cloud's faults and returns the faults
// in force afterwards, with the count of each kind injected so far.
func (c *Client) SetFault(ctx context.Context, f sim.FaultRequest) (sim.FaultState, error) {
	var out sim.FaultState
	err := c.Do(ctx, http.MethodPost, pathFaults, f, &out)
	return out, err
}

// Faults returns the faults in force and the count of each kind injected.
func (c *Client) Faults(ctx context.Context) (sim.FaultState, error) {
	var out sim.FaultState
	err := c.Do(ctx, http.MethodGet, pathFaults, nil, &out)
	return out, err
}

// Quotas returns the account's API quotas in force and the recent
// windows' calls and throttles.
func (c *Client) Quotas(ctx context.Context) (sim.ThrottlingState, error) {
	var out sim.ThrottlingState
	err := c.Do(ctx, http.MethodGet, pathQuotas, nil, &out)
	return out, err
}

// SetQuotas replaces the account's API quotas and returns the new state.
func (c *Client) SetQuotas(ctx context.Context, q sim.Quotas) (sim.ThrottlingState, error) {
	var out sim.ThrottlingState
	err := c.Do(ctx, http.MethodPost, pathQuotas, q, &out)
	return out, err
}

// CallAPI runs one OpenAPI action as the account's owner (sim.Cloud.Call)
// and decodes its answer into out (nil: discarded). A refused call is a
// *ControlError whose Message is the action's "Code: message".
func (c *Client) CallAPI(ctx context.Context, action string, params map[string]string, out any) error {
	return c.Do(ctx, http.MethodPost, pathAPI, sim.APICall{Action: action, Params: params}, out)
}

// Do calls the control endpoint with in as the JSON body (nil: none) and
// decodes the answer into out (nil: discarded). May return a *ControlError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.State.ControlEndpoint+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("sim control %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("sim control %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &ControlError{Method: method, Path: path, Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("sim control %s %s: decode: %w", method, path, err)
	}
	return nil
}

// newToken writes a fresh random token to dir's control.token (0600).
func newToken(dir string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b[:])
	if err := writeFileAtomic(filepath.Join(dir, TokenFile), []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write control token: %w", err)
	}
	return token, nil
}

func readToken(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return "", fmt.Errorf("read control token: %w (veni sim needs root to read it)", err)
	}
	return strings.TrimSpace(string(b)), nil
}
