// Package template checks the AWS SAM template (template.yaml at the
// repository root) against the code it deploys: one function per folder in
// functions/, the environment each function reads, IAM policies derived
// from the AWS calls the Go packages make, the DynamoDB schema of
// shared/store/dynamo, the queues, alarms and outputs. It has no API: run
// `go test ./infra/template` (add -short to skip the arm64 builds), and
// infra/template/lint.sh for cfn-lint.
package template
