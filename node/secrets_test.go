package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Ensure nothing node exposes shows the AccessKey of veni.json: not the
// Env in slog or fmt, its Config in JSON (an Env itself does not marshal:
// its store has hooks), not the warnings, the source or the errors of a
// failing cloud call.
func TestEnv_NoSecretAnywhere(t *testing.T) {
	clearCredentialEnv(t)
	const keyID, secret = "LTAInodeleakcheck0123", "node-leak-secret-value"
	dead := httptest.NewServer(http.NotFoundHandler())
	endpoint := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	var texts = map[string]string{}
	for _, mode := range []os.FileMode{0o600, 0o644} {
		path := mustConfig(t, nil, mode, map[string]any{"access_key": keyID, "access_secret": secret, "endpoint": endpoint})
		env, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, callErr := env.Cloud().VSwitches(ctx, "vsw-sim-a")
		cancel()
		if callErr == nil {
			t.Fatal("a call to a dead endpoint succeeded")
		}
		js, err := json.Marshal(struct {
			Config   any
			Warnings []string
		}{env.Config, env.CredentialWarnings()})
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		log.Error("node", "env", env, "config", env.Config, "err", callErr)
		slog.New(slog.NewTextHandler(&logs, nil)).Error("node", "env", env, "err", callErr)
		src, srcErr := env.CredentialSource()
		name := fmt.Sprintf("mode %04o ", mode)
		texts[name+"json"] = string(js)
		texts[name+"logs"] = logs.String()
		texts[name+"fmt"] = fmt.Sprintf("%v %+v %#v", env, env, env.Config)
		texts[name+"error"] = fmt.Sprintf("%v %+v", callErr, srcErr)
		texts[name+"warnings"] = strings.Join(env.CredentialWarnings(), "\n") + src
	}
	for where, text := range texts {
		for _, s := range []string{keyID, secret, url.QueryEscape(keyID), url.QueryEscape(secret)} {
			if strings.Contains(text, s) {
				t.Errorf("%s shows %q:\n%s", where, s, text)
			}
		}
	}
}
