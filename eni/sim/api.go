package sim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// API versions of the two products served on one endpoint.
const (
	versionECS = "2014-05-26"
	versionVPC = "2016-04-28"
)

// signatureWindow is how far a request's Timestamp may be from the server's
// clock, and how long a SignatureNonce stays used (as the cloud does it).
const signatureWindow = 15 * time.Minute

// action is one OpenAPI action: the products (by version) that offer it and
// what it does.
type action struct {
	versions []string
	handle   func(c *Cloud, q *request) (response, *apiError)
}

// actions lists every action the sim serves. DescribeVSwitches exists in
// both ECS and VPC, as in the cloud.
var actions = map[string]action{
	"CreateNetworkInterface":     {[]string{versionECS}, (*Cloud).apiCreateNetworkInterface},
	"AttachNetworkInterface":     {[]string{versionECS}, (*Cloud).apiAttachNetworkInterface},
	"DetachNetworkInterface":     {[]string{versionECS}, (*Cloud).apiDetachNetworkInterface},
	"DeleteNetworkInterface":     {[]string{versionECS}, (*Cloud).apiDeleteNetworkInterface},
	"DescribeNetworkInterfaces":  {[]string{versionECS}, (*Cloud).apiDescribeNetworkInterfaces},
	"AssignPrivateIpAddresses":   {[]string{versionECS}, (*Cloud).apiAssignPrivateIpAddresses},
	"UnassignPrivateIpAddresses": {[]string{versionECS}, (*Cloud).apiUnassignPrivateIpAddresses},
	"DescribeInstanceTypes":      {[]string{versionECS}, (*Cloud).apiDescribeInstanceTypes},
	"DescribeVSwitches":          {[]string{versionECS, versionVPC}, (*Cloud).apiDescribeVSwitches},
}

// response is a success body; every one carries the request id.
type response interface{ setRequestID(string) }

type respBase struct {
	RequestId string `json:"RequestId"`
}

func (b *respBase) setRequestID(id string) { b.RequestId = id }

// APIHandler returns the RPC-style OpenAPI endpoint for ECS and VPC. Point
// an SDK client at it with request.Scheme = "http" and request.Domain set
// to the server's host:port (or client.Domain).
func (c *Cloud) APIHandler() http.Handler { return http.HandlerFunc(c.serveAPI) }

func (c *Cloud) serveAPI(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	resp, aerr := c.handleAPI(r)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("x-acs-request-id", reqID)
	if aerr != nil {
		w.WriteHeader(aerr.status)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"RequestId": reqID,
			"HostId":    r.Host,
			"Code":      aerr.code,
			"Message":   aerr.message,
			"Recommend": "https://api.aliyun.com/troubleshoot?q=" + aerr.code + "&product=Ecs",
		})
		return
	}
	resp.setRequestID(reqID)
	_ = json.NewEncoder(w).Encode(resp)
}

func (c *Cloud) handleAPI(r *http.Request) (response, *apiError) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, newAPIError(http.StatusMethodNotAllowed, "UnsupportedHTTPMethod",
			"RPC-style APIs take GET or POST, not %s.", r.Method)
	}
	params, err := requestParams(r)
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, CodeInvalidParameter, "cannot parse the request: %v", err)
	}
	q := &request{params: params}
	name := q.get("Action")
	if name == "" {
		return nil, errMissing("Action")
	}
	if aerr := c.authenticate(r.Method, params); aerr != nil {
		return nil, aerr
	}
	version := q.get("Version")
	if version != versionECS && version != versionVPC {
		return nil, newAPIError(http.StatusBadRequest, CodeInvalidVersion, "Specified parameter Version %q is not valid.", version)
	}
	act, ok := actions[name]
	if !ok || !slices.Contains(act.versions, version) {
		return nil, newAPIError(http.StatusNotFound, CodeInvalidAction,
			"Specified api %s is not found in version %s, please check your url and method.", name, version)
	}
	if f := q.get("Format"); f != "" && !strings.EqualFold(f, "JSON") {
		return nil, errInvalid("Format", f+" (the sim answers JSON only)")
	}
	if region := q.get("RegionId"); region != "" && region != c.cfg.RegionID {
		return nil, newAPIError(http.StatusNotFound, CodeInvalidRegion, "The specified RegionId %s does not exist.", region)
	}
	if aerr := c.injectFault(r, name); aerr != nil {
		return nil, aerr
	}
	resp, aerr := act.handle(c, q)
	if aerr != nil {
		c.mu.Lock()
		c.statsLocked(name).Errors++
		c.mu.Unlock()
	}
	return resp, aerr
}

// requestParams merges the query and the form body; the body wins, as in
// the SDK's signer, which signs both as one map.
func requestParams(r *http.Request) (url.Values, error) {
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	params := url.Values{}
	for k, v := range r.URL.Query() {
		params[k] = v
	}
	for k, v := range r.PostForm {
		params[k] = v
	}
	return params, nil
}

func (c *Cloud) statsLocked(action string) *ActionStats {
	st, ok := c.stats[action]
	if !ok {
		st = &ActionStats{}
		c.stats[action] = st
	}
	return st
}

// injectFault counts the call and applies the action's fault, sleeping
// without holding the model lock.
func (c *Cloud) injectFault(r *http.Request, name string) *apiError {
	c.mu.Lock()
	f, ok := c.faults[name]
	if !ok {
		f = c.faults[""]
	}
	st := c.statsLocked(name)
	st.Calls++
	c.mu.Unlock()

	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	var aerr *apiError
	switch {
	case f.ThrottleRate > 0 && mathrand.Float64() < f.ThrottleRate:
		aerr = newAPIError(http.StatusBadRequest, CodeThrottling, "Request was denied due to user flow control.")
	case f.ErrorRate > 0 && mathrand.Float64() < f.ErrorRate:
		code := f.ErrorCode
		if code == "" {
			code = CodeInternalError
		}
		aerr = newAPIError(http.StatusInternalServerError, code,
			"The request processing has failed due to some unknown error, exception or failure.")
	default:
		return nil
	}
	c.mu.Lock()
	if aerr.code == CodeThrottling {
		st.Throttled++
	} else {
		st.Faulted++
	}
	c.mu.Unlock()
	return aerr
}

// authenticate checks the signature version 1.0 scheme: HMAC-SHA1 over
// METHOD&%2F&percentEncode(sorted canonical query), keyed by secret+"&".
// With no credentials configured every request passes.
func (c *Cloud) authenticate(method string, params url.Values) *apiError {
	if len(c.cfg.Credentials) == 0 {
		return nil
	}
	keyID := params.Get("AccessKeyId")
	if keyID == "" {
		return errMissing("AccessKeyId")
	}
	secret, ok := c.cfg.Credentials[keyID]
	if !ok {
		return newAPIError(http.StatusNotFound, CodeInvalidAccessKeyID, "Specified access key is not found.")
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
	ts, err := time.Parse("2006-01-02T15:04:05Z", params.Get("Timestamp"))
	if err != nil {
		return newAPIError(http.StatusBadRequest, CodeTimestampFormat,
			"Specified time stamp %q is not in ISO 8601 UTC (yyyy-MM-ddTHH:mm:ssZ).", params.Get("Timestamp"))
	}
	now := time.Now()
	if d := now.Sub(ts); d > signatureWindow || d < -signatureWindow {
		return newAPIError(http.StatusBadRequest, CodeTimestampExpired, "Specified time stamp or date header is expired.")
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
	if !c.nonces.use(keyID+"/"+params.Get("SignatureNonce"), now) {
		return newAPIError(http.StatusBadRequest, CodeSignatureNonceUsed, "Specified signature nonce was used already.")
	}
	return nil
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

// nonceBook remembers the nonces used within the signature window.
type nonceBook struct {
	seen  map[string]time.Time
	order []nonceEntry
}

type nonceEntry struct {
	key string
	at  time.Time
}

// use records key and reports whether it was unused.
func (b *nonceBook) use(key string, now time.Time) bool {
	if b.seen == nil {
		b.seen = map[string]time.Time{}
	}
	for len(b.order) > 0 && now.Sub(b.order[0].at) > signatureWindow {
		delete(b.seen, b.order[0].key)
		b.order = b.order[1:]
	}
	if _, dup := b.seen[key]; dup {
		return false
	}
	b.seen[key] = now
	b.order = append(b.order, nonceEntry{key: key, at: now})
	return true
}

// newRequestID returns an id shaped like the cloud's
// (8-4-4-4-12 upper-case hex).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}
