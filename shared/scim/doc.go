// Package scim is learnerlink's SCIM 2.0 service provider (RFC 7643/7644):
// the HTTP API Okta and Microsoft Entra provision Users and Groups through.
// It serves /scim/v2/{Users,Groups,ServiceProviderConfig,ResourceTypes,Schemas}
// behind a bearer token and is mounted as-is in the local runner and, via
// aws-lambda-go-api-proxy, in AWS Lambda.
//
// # Writes: store first, queue second
//
// Every accepted write stores the desired state through the store, which
// atomically bumps the identity's version and marks it pending, and only
// then enqueues a queue.Intent (reason "scim.user.create", "scim.user.patch",
// "scim.group.replace", ...) for the user, or for every identity a group
// write changed (members added or removed and, on a rename, every member:
// a learner's groups carry their names). If the enqueue fails the request
// still succeeds and a warning is logged: the store's pending index is the
// durable outbox, and the sweeper re-queues identities that stay pending
// (see package store).
// The enqueue is bounded by a short timeout detached from the client's
// context, so a slow queue never holds a response for long and a client
// that hangs up after the write does not cancel it. Nothing else is waited
// on: no target (LMS) is called from here.
//
// A PATCH applies all its operations to a copy and writes once; any failing
// operation writes nothing. Optimistic concurrency uses the store's
// versions: If-Match (weak ETag W/"<version>") is honoured on PUT, PATCH and
// DELETE (412 on mismatch); without it, a concurrent change is re-read and
// re-applied a few times before answering 409.
//
// # Reads and filters
//
// Filters are parsed by package scim/filter. `userName eq`, `externalId eq`,
// `id eq` (and `displayName eq`, `id eq` for Groups) are answered from the
// store's indexes; any other filter walks store.ListIdentities/ListGroups
// page by page (a paged Query in the DynamoDB store, never a Scan) and
// evaluates the filter on each rendered resource. totalResults is exact, so
// such a filter reads every live resource once.
//
// # Errors
//
// Every error is an RFC 7644 §3.12 body with "status" as a string and the
// scimType that fits. Client input never yields a 5xx; a 500 means the
// store failed, and is logged. Logs carry the request id, method, route,
// status, duration and resource id, never the Authorization header,
// passwords, bodies or userNames. Passwords are accepted and discarded.
package scim
