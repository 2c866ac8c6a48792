// Package multitargettest holds end-to-end tests of a deployment with
// several targets: the local runner (allinone.Start) in front of an Absorb
// simulator, learnerlink's own SCIM server as an outbound SCIM far end, a
// OneLogin simulator, and a SCIM far end that is down for the whole test.
// The test plays Okta over SCIM. It has no non-test code.
package multitargettest
