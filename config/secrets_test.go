package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Ensure a Config holding an AccessKey pair shows neither the secret nor
// the whole key however it is printed, logged or marshalled.
func TestConfig_Redacted(t *testing.T) {
	cfg, _, err := Parse([]byte(`{"access_key":"LTAIfullaccesskeyid","access_secret":"the-access-secret","max_pool_size":7}`))
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(struct{ C Config }{cfg})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("cfg", "config", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "config", cfg)
	outs := map[string]string{
		"json": string(js), "slog": logged.String(), "%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg),
		"%#v": fmt.Sprintf("%#v", cfg), "%s ptr": fmt.Sprintf("%s", &cfg),
	}
	for name, out := range outs {
		if strings.Contains(out, "the-access-secret") || strings.Contains(out, "LTAIfullaccesskeyid") {
			t.Errorf("%s shows the credentials: %s", name, out)
		}
		if !strings.Contains(out, "7") {
			t.Errorf("%s lost the rest of the config: %s", name, out)
		}
	}
	if cfg.AccessSecret != "the-access-secret" {
		t.Fatal("redaction changed the config itself")
	}
}
