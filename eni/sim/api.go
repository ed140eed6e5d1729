package sim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// API versions of the two products served on one endpoint.
const (
	versionECS = "2014-05-26"
	versionVPC = "2016-04-28"
)

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
	"AssignIpv6Addresses":        {[]string{versionECS}, (*Cloud).apiAssignIpv6Addresses},
	"UnassignIpv6Addresses":      {[]string{versionECS}, (*Cloud).apiUnassignIpv6Addresses},
	"DescribeInstanceTypes":      {[]string{versionECS}, (*Cloud).apiDescribeInstanceTypes},
	"DescribeVSwitches":          {[]string{versionECS, versionVPC}, (*Cloud).apiDescribeVSwitches},

	"CreateSecurityGroup":             {[]string{versionECS}, (*Cloud).apiCreateSecurityGroup},
	"AuthorizeSecurityGroup":          {[]string{versionECS}, (*Cloud).apiAuthorizeSecurityGroup},
	"AuthorizeSecurityGroupEgress":    {[]string{versionECS}, (*Cloud).apiAuthorizeSecurityGroupEgress},
	"RevokeSecurityGroup":             {[]string{versionECS}, (*Cloud).apiRevokeSecurityGroup},
	"RevokeSecurityGroupEgress":       {[]string{versionECS}, (*Cloud).apiRevokeSecurityGroupEgress},
	"DescribeSecurityGroups":          {[]string{versionECS}, (*Cloud).apiDescribeSecurityGroups},
	"DescribeSecurityGroupAttribute":  {[]string{versionECS}, (*Cloud).apiDescribeSecurityGroupAttribute},
	"DeleteSecurityGroup":             {[]string{versionECS}, (*Cloud).apiDeleteSecurityGroup},
	"ModifyNetworkInterfaceAttribute": {[]string{versionECS}, (*Cloud).apiModifyNetworkInterfaceAttribute},
	"TagResources":                    {[]string{versionECS}, (*Cloud).apiTagResources},
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
	resp, aerr := c.handleAPI(r, w.Header())
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

// handleAPI answers one call; it sets the rate-limit headers on h once the
// call is known to be an authenticated one of a served action.
func (c *Cloud) handleAPI(r *http.Request, h http.Header) (response, *apiError) {
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
		c.mu.Lock()
		c.authFailures[aerr.code]++
		c.mu.Unlock()
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
	if aerr := checkParams(name, q); aerr != nil {
		return nil, aerr
	}
	if aerr := c.admit(name, h); aerr != nil {
		return nil, aerr
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

// APICall is one OpenAPI action run by the operator through the control
// endpoint (veni sim sg): the action's parameters as the SDK would send
// them (SecurityGroupIds.1, Permissions.1.IpProtocol, ...).
type APICall struct {
	Action string            `json:"action"`
	Params map[string]string `json:"params,omitempty"`
}

// Call runs an action with the same parameter checks and model as the
// HTTP API, as the account's owner at the console would: no signature,
// and the account's quotas and injected faults do not apply. It returns
// the action's answer (JSON-able), or an error reading "Code: message".
func (c *Cloud) Call(call APICall) (any, error) {
	act, ok := actions[call.Action]
	if !ok {
		return nil, fmt.Errorf("%s: no such action", call.Action)
	}
	params := url.Values{"Action": {call.Action}}
	for k, v := range call.Params {
		params.Set(k, v)
	}
	q := &request{params: params}
	if aerr := checkParams(call.Action, q); aerr != nil {
		return nil, fmt.Errorf("%s: %s", aerr.code, aerr.message)
	}
	resp, aerr := act.handle(c, q)
	if aerr != nil {
		return nil, fmt.Errorf("%s: %s", aerr.code, aerr.message)
	}
	resp.setRequestID(newRequestID())
	return resp, nil
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

// newRequestID returns an id shaped like the cloud's
// (8-4-4-4-12 upper-case hex).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}
