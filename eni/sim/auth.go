package sim

import (
	"container/heap"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// signatureWindow is how far a request's Timestamp may be from the server's
// clock, into the past or the future (15 minutes, as the cloud allows). A
// SignatureNonce stays used until its request's Timestamp is that far in
// the past: only then can the request no longer be replayed.
const signatureWindow = 15 * time.Minute

// timestampLayout is the ISO 8601 UTC form the SDK writes.
const timestampLayout = "2006-01-02T15:04:05Z"

// authenticate checks the signature version 1.0 scheme: HMAC-SHA1 over
// METHOD&%2F&percentEncode(sorted canonical query), keyed by secret+"&".
// Keys starting "STS." are the instance RAM roles' temporary keys
// (sts.go): their SecurityToken must be the one issued with them and not
// expired; the token is checked before the signature, because the cloud
// derives the temporary secret from it. With no Config.Credentials every
// request passes (open mode), STS keys included.
func (c *Cloud) authenticate(method string, params url.Values) *apiError {
	if len(c.cfg.Credentials) == 0 {
		return nil
	}
	keyID := params.Get("AccessKeyId")
	if keyID == "" {
		return errMissing("AccessKeyId")
	}
	now := c.now()
	secret, aerr := c.secretOf(keyID, params.Get("SecurityToken"), now)
	if aerr != nil {
		return aerr
	}
	if m := params.Get("SignatureMethod"); m != "HMAC-SHA1" {
		return errInvalid("SignatureMethod", m)
	}
	if v := params.Get("SignatureVersion"); v != "1.0" {
		return errInvalid("SignatureVersion", v)
	}
	for _, p := range []string{"Signature", "SignatureNonce", "Timestamp"} {
		if params.Get(p) == "" {
			return errMissing(p)
		}
	}
	ts, err := time.Parse(timestampLayout, params.Get("Timestamp"))
	if err != nil {
		return newAPIError(http.StatusBadRequest, CodeTimestampFormat,
			"Specified time stamp %q is not in ISO 8601 UTC (yyyy-MM-ddTHH:mm:ssZ).", params.Get("Timestamp"))
	}
	if d := now.Sub(ts); d > signatureWindow || d < -signatureWindow {
		return newAPIError(http.StatusBadRequest, CodeTimestampExpired,
			"Specified time stamp or date header is expired (more than %s from the server's clock).", signatureWindow)
	}
	stringToSign := StringToSign(method, params)
	if !hmac.Equal([]byte(params.Get("Signature")), []byte(Sign(stringToSign, secret))) {
		// The SDK compares the server's string to sign (after this marker)
		// with its own to tell a wrong secret from a signing bug.
		return newAPIError(http.StatusBadRequest, CodeSignatureDoesNotMatch,
			"Specified signature is not matched with our calculation. server string to sign is:%s", stringToSign)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.nonces.use(keyID+"/"+params.Get("SignatureNonce"), ts, now) {
		return newAPIError(http.StatusBadRequest, CodeSignatureNonceUsed, "Specified signature nonce was used already.")
	}
	return nil
}

// secretOf returns the secret that signs requests of keyID: a configured
// AccessKey's, or an STS key's after its token checks out.
func (c *Cloud) secretOf(keyID, token string, now time.Time) (string, *apiError) {
	if !strings.HasPrefix(keyID, stsKeyPrefix) {
		secret, ok := c.cfg.Credentials[keyID]
		if !ok {
			return "", newAPIError(http.StatusNotFound, CodeInvalidAccessKeyID, "Specified access key is not found.")
		}
		return secret, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cred, ok := c.sts[keyID]
	switch {
	case !ok:
		return "", newAPIError(http.StatusNotFound, CodeInvalidAccessKeyID, "Specified access key is not found.")
	case token == "":
		return "", newAPIError(http.StatusBadRequest, CodeMissingSecurityToken, "SecurityToken is mandatory for this action.")
	case !hmac.Equal([]byte(token), []byte(cred.token)):
		return "", newAPIError(http.StatusBadRequest, CodeSecurityTokenMismatch, "The Security Token does not match access key.")
	case !now.Before(cred.expires):
		return "", newAPIError(http.StatusBadRequest, CodeSecurityTokenExpired, "Specified SecurityToken is expired.")
	}
	return cred.secret, nil
}

// StringToSign is the canonical string of an RPC request, exactly as the
// SDK builds it: every parameter but Signature, sorted and form-encoded,
// with "+" as %20, "*" as %2A and "~" unescaped, then percent-encoded once
// more behind "METHOD&%2F&".
func StringToSign(method string, params url.Values) string {
	signed := url.Values{}
	for k, v := range params {
		if k != "Signature" {
			signed[k] = v
		}
	}
	s := signed.Encode()
	s = strings.ReplaceAll(s, "+", "%20")
	s = strings.ReplaceAll(s, "*", "%2A")
	s = strings.ReplaceAll(s, "%7E", "~")
	return method + "&%2F&" + url.QueryEscape(s)
}

// Sign returns the base64 HMAC-SHA1 of stringToSign keyed by secret+"&".
func Sign(stringToSign, secret string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// nonceBook remembers each used nonce until the request that used it can no
// longer pass the timestamp check: its Timestamp plus signatureWindow. A
// request dated ahead of the server's clock therefore keeps its nonce
// longer than one dated behind; forgetting by arrival time would let a
// request dated 14 minutes ahead be replayed 15 minutes after it was seen.
type nonceBook struct {
	seen  map[string]time.Time // key → when it may be forgotten
	queue nonceQueue           // the same, soonest first
}

type nonceEntry struct {
	key    string
	forget time.Time
}

// use records key for a request dated ts and reports whether it was
// unused. It first forgets what expired by now.
func (b *nonceBook) use(key string, ts, now time.Time) bool {
	if b.seen == nil {
		b.seen = map[string]time.Time{}
	}
	for len(b.queue) > 0 && now.After(b.queue[0].forget) {
		e := heap.Pop(&b.queue).(nonceEntry)
		if b.seen[e.key].Equal(e.forget) {
			delete(b.seen, e.key)
		}
	}
	if _, dup := b.seen[key]; dup {
		return false
	}
	forget := ts.Add(signatureWindow)
	b.seen[key] = forget
	heap.Push(&b.queue, nonceEntry{key: key, forget: forget})
	return true
}

// size is how many nonces are remembered.
func (b *nonceBook) size() int { return len(b.seen) }

// nonceQueue is a min-heap of nonce entries by forget time.
type nonceQueue []nonceEntry

func (q nonceQueue) Len() int           { return len(q) }
func (q nonceQueue) Less(i, j int) bool { return q[i].forget.Before(q[j].forget) }
func (q nonceQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *nonceQueue) Push(x any)        { *q = append(*q, x.(nonceEntry)) }
func (q *nonceQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}
