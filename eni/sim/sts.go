package sim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"
)

// Instance RAM roles: the metadata service lists an instance's role at
// ram/security-credentials/ and serves STS credentials for it at
// ram/security-credentials/<role>, and the OpenAPI accepts those
// credentials (AccessKeyId "STS.…" plus the SecurityToken parameter) until
// they expire.

// stsKeyPrefix starts every temporary AccessKeyId, as in the cloud.
const stsKeyPrefix = "STS."

// DefaultSTSLifetime is how long credentials of an instance RAM role live
// when Config.STSLifetime is zero: one hour.
const DefaultSTSLifetime = time.Hour

// NoRAMRole in InstanceSpec.RAMRole gives an instance no RAM role even when
// Config.DefaultRAMRole names one.
const NoRAMRole = "-"

// stsCredential is one set of temporary credentials issued to an instance.
type stsCredential struct {
	keyID, secret, token string
	instanceID, role     string
	issued, expires      time.Time
}

// stsAnswer is the JSON of ram/security-credentials/<role>, field for field
// what ECS metadata returns.
type stsAnswer struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
	Expiration      string `json:"Expiration"`
	SecurityToken   string `json:"SecurityToken"`
	LastUpdated     string `json:"LastUpdated"`
	Code            string `json:"Code"`
}

// roleCredentialsLocked returns the instance's current STS credentials,
// issuing new ones when there are none or half their lifetime has passed:
// like the cloud, the service hands out the same credentials for a while
// and rotates them well before they expire, so a client that asks again
// when a quarter of the lifetime is left gets fresh ones.
func (c *Cloud) roleCredentialsLocked(inst *instance, now time.Time) *stsCredential {
	life := c.cfg.STSLifetime
	if life <= 0 {
		life = DefaultSTSLifetime
	}
	cur := c.stsCurrent[inst.ID]
	if cur != nil && cur.role == inst.RAMRole && now.Before(cur.issued.Add(life/2)) {
		return cur
	}
	c.pruneSTSLocked(now, life)
	// The wire format has whole seconds: round the expiry down so the one
	// the client reads is the one the API enforces.
	issued := now
	cred := &stsCredential{
		keyID:      stsKeyPrefix + RandomID(24),
		secret:     RandomID(30),
		token:      "CAIS" + randomBase64(89), // base64: '+', '/' and '=' test the signer's escaping
		instanceID: inst.ID,
		role:       inst.RAMRole,
		issued:     issued,
		expires:    issued.Add(life).Truncate(time.Second),
	}
	c.sts[cred.keyID] = cred
	c.stsCurrent[inst.ID] = cred
	c.stsIssued++
	return cred
}

// pruneSTSLocked forgets credentials that expired long enough ago that a
// client cannot still be holding them; until then they are remembered so
// that the API answers InvalidSecurityToken.Expired rather than an unknown
// key.
func (c *Cloud) pruneSTSLocked(now time.Time, life time.Duration) {
	keep := max(life, signatureWindow)
	for id, cred := range c.sts {
		if now.Sub(cred.expires) > keep {
			delete(c.sts, id)
		}
	}
}

// ramRoleMetadata answers the ram/ keys of the metadata tree for an
// instance. found is false for a key the instance does not have.
func (c *Cloud) ramRoleMetadata(inst *instance, key string) (string, bool) {
	if inst.RAMRole == "" {
		return "", false
	}
	switch key {
	case "ram":
		return listing("security-credentials/"), true
	case "ram/security-credentials":
		return inst.RAMRole, true
	case "ram/security-credentials/" + inst.RAMRole:
		cred := c.roleCredentialsLocked(inst, c.now())
		b, _ := json.Marshal(stsAnswer{
			AccessKeyID:     cred.keyID,
			AccessKeySecret: cred.secret,
			Expiration:      cred.expires.UTC().Format(timestampLayout),
			SecurityToken:   cred.token,
			LastUpdated:     cred.issued.UTC().Format(timestampLayout),
			Code:            "Success",
		})
		return string(b), true
	}
	return "", false
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
