package sim

import (
	"errors"
	"fmt"
	"net/http"
)

// These errors are returned by New and AddInstance, before anything is
// served. They are wrapped with context; match them with errors.Is.
var (
	// ErrInvalidConfig means Config failed validation.
	ErrInvalidConfig = errors.New("invalid sim config")

	// ErrUnknownInstanceType means an InstanceSpec names a type that is not
	// in Config.InstanceTypes.
	ErrUnknownInstanceType = errors.New("unknown instance type")

	// ErrUnknownVSwitch means an InstanceSpec names a vSwitch that is not in
	// Config.VSwitches.
	ErrUnknownVSwitch = errors.New("unknown vswitch")

	// ErrUnknownSecurityGroup means an InstanceSpec names a security group
	// that is not in Config.SecurityGroups.
	ErrUnknownSecurityGroup = errors.New("unknown security group")

	// ErrInstanceExists means an instance with that ID was already added.
	ErrInstanceExists = errors.New("instance already exists")

	// ErrVSwitchFull means the vSwitch has no free address left for the
	// instance's primary ENI.
	ErrVSwitchFull = errors.New("vswitch has no free ip address")

	// ErrClosed means the Cloud was closed.
	ErrClosed = errors.New("sim cloud closed")
)

// Error codes the OpenAPI answers with. They are the codes Alibaba Cloud
// uses, so a client's error mapping can be tested against the sim.
//
// The codes are those of Alibaba's public error list (the common errors of
// every RPC API, as also listed by the Terraform provider and the SDKs).
// Not verified against a live endpoint: the HTTP status of the STS token
// errors (400 here) and of MissingSecurityToken (400), and the exact
// message texts; ServiceUnavailable is sent with 503.
const (
	CodeInvalidAccessKeyID     = "InvalidAccessKeyId.NotFound"
	CodeSignatureDoesNotMatch  = "SignatureDoesNotMatch"
	CodeSignatureNonceUsed     = "SignatureNonceUsed"
	CodeTimestampExpired       = "InvalidTimeStamp.Expired"
	CodeTimestampFormat        = "InvalidTimeStamp.Format"
	CodeMissingSecurityToken   = "MissingSecurityToken"
	CodeSecurityTokenMismatch  = "InvalidSecurityToken.MismatchWithAccessKey"
	CodeSecurityTokenExpired   = "InvalidSecurityToken.Expired"
	CodeServiceUnavailable     = "ServiceUnavailable"
	CodeInvalidAction          = "InvalidAction.NotFound"
	CodeInvalidVersion         = "InvalidVersion"
	CodeMissingParameter       = "MissingParameter"
	CodeInvalidParameter       = "InvalidParameter"
	CodeInvalidRegion          = "InvalidRegionId.NotFound"
	CodeThrottling             = CodeThrottlingUser // what the quotas and, by default, a throttle fault answer
	CodeInternalError          = "InternalError"
	CodeVSwitchNotFound        = "InvalidVSwitchId.NotFound"
	CodeVSwitchIPNotEnough     = "InvalidVSwitchId.IpNotEnough"
	CodeVSwitchIPInvalid       = "InvalidVSwitchId.IpInvalid"
	CodeSecurityGroupNotFound  = "InvalidSecurityGroupId.NotFound"
	CodeENINotFound            = "InvalidEniId.NotFound"
	CodeInstanceNotFound       = "InvalidInstanceId.NotFound"
	CodeInvalidENIState        = "InvalidOperation.InvalidEniState"
	CodeZoneMismatch           = "InvalidOperation.AvailabilityZoneMismatch"
	CodeDetachPrimaryENI       = "InvalidOperation.DetachPrimaryEniNotAllowed"
	CodeENIPerInstanceExceeded = "EniPerInstanceLimitExceeded"
	CodePrivateIPQuotaExceeded = "QuotaExceeded.PrivateIpAddress"
	CodeIPAssigned             = "InvalidIp.IpAssigned"
	CodeIPUnassigned           = "InvalidIp.IpUnassigned"
	CodeInvalidIPAddress       = "InvalidIp.Address"
	CodeIPRepeated             = "InvalidIp.IpRepeated"
	// Trunking (see ops_trunk.go).
	CodeTrunkNotSupported         = "InvalidOperation.InstanceTypeNotSupportEniTrunking"
	CodeInvalidTrunkENIStatus     = "InvalidOperation.InvalidTrunkEniStatus"
	CodeENINotBelongTrunk         = "InvalidParameter.EniNotBelongTrunk"
	CodeHasMemberENIAttached      = "InvalidOperation.HasMemberEniAttached"
	CodeENITypeNotSupportTrunking = "InvalidOperation.EniTypeNotSupportTrunking"
	CodeIPv4CountExceeded         = "InvalidOperation.Ipv4CountExceeded"
	CodeIPv6CountExceeded         = "InvalidOperation.Ipv6CountExceeded"
	CodeIPv6NotSupported          = "InvalidOperation.Ipv6NotSupport"
	CodeVSwitchIPv6Off            = "InvalidVSwitch.Ipv6NotTurnOn"
)

// apiError is an OpenAPI error answer: the HTTP status and body code the
// cloud would send.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (http %d): %s", e.code, e.status, e.message)
}

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func errMissing(param string) *apiError {
	return newAPIError(http.StatusBadRequest, CodeMissingParameter,
		"The input parameter %q that is mandatory for processing this request is not supplied.", param)
}

func errInvalid(param, value string) *apiError {
	return newAPIError(http.StatusBadRequest, CodeInvalidParameter,
		"The specified parameter %q is not valid: %q.", param, value)
}

func errENINotFound(id string) *apiError {
	return newAPIError(http.StatusNotFound, CodeENINotFound, "The specified ENI %s does not exist.", id)
}

func errInstanceNotFound(id string) *apiError {
	return newAPIError(http.StatusNotFound, CodeInstanceNotFound, "The specified instance %s does not exist.", id)
}

func errVSwitchNotFound(id string) *apiError {
	return newAPIError(http.StatusNotFound, CodeVSwitchNotFound, "The specified VSwitch %s does not exist.", id)
}

func errENIState(id, status, op string) *apiError {
	return newAPIError(http.StatusBadRequest, CodeInvalidENIState,
		"The operation %s is not supported while ENI %s is %s.", op, id, status)
}

func errIPv6Off(vswID string) *apiError {
	return newAPIError(http.StatusForbidden, CodeVSwitchIPv6Off,
		"The specified VSwitch %s does not have IPv6 turned on.", vswID)
}

func errIPNotEnough(vswID string) *apiError {
	return newAPIError(http.StatusForbidden, CodeVSwitchIPNotEnough,
		"The specified VSwitch %s has not enough IpAddress.", vswID)
}
