// Package scimout is learnerlink's outbound SCIM 2.0 client connector: it
// pushes learners to an LMS that is a SCIM service provider (Learn Amp,
// Lessonly / Seismic Learning, EasyLlama, Absorb's SCIM API, or any RFC
// 7643/7644 server). The package is "scimout" because shared/scim is our
// own SCIM server.
//
// # Behaviour (RFC 7644; TARGETS.md §4.2)
//
//   - Discovery: GET /ServiceProviderConfig once, lazily, on the first call
//     that needs patch.supported, etag.supported or filter.maxResults and
//     only if the Profile does not override all three; New makes no
//     request. A transient failure is retried by the next call; a missing
//     endpoint (4xx) means PUT, no ETags, 100 per page.
//   - Find: `filter=userName eq "v"`, `externalId eq`, `emails.value eq`,
//     or the enterprise (or mapped) employeeNumber, with '"', '\' and
//     control characters escaped as in a JSON string and the query encoded
//     with %20. Results are re-checked client-side (servers that ignore a
//     filter return everyone). A server that refuses the email or
//     employeeNumber filter (400 invalidFilter, 501) gives "no match".
//   - Create: POST /Users. Link-before-create is the worker's job (Find);
//     on 409 Create re-runs the lookups (externalId, userName, email) and
//     returns a Conflict *connector.Error wrapping a *DuplicateError with
//     the key that matched and the learners found, so the worker can
//     adopt (its afterConflict path) or hand the case to review.
//   - Update: with PATCH, a PatchOp with explicit paths (userName,
//     externalId, name.givenName, name.familyName, displayName,
//     emails[type eq "work"].value, active, mapped fields; "" in Fields
//     removes); otherwise GET → merge → PUT of the full resource, always
//     carrying active. Empty core values are never written (no clearing of
//     a name or email). Deactivate/reactivate are active=false/true; the
//     connector never sends DELETE (Lessonly archives and drops reporting
//     data; Absorb's DELETE is a soft delete anyway).
//   - ETags: when supported, PUT sends If-Match with the meta.version just
//     read; PATCH sends the version last seen for that user (kept in a
//     bounded in-memory cache filled by Get, Find, Create and writes) and
//     none when unknown, rather than spending a GET per update on a patch
//     whose explicit paths do not depend on the old state. On 412 the
//     connector re-reads and re-applies once; a second 412 is Retryable.
//   - Groups (Target() is a connector.GroupSetter only when
//     Profile.GroupsSupported): find by `displayName eq`, create if
//     missing (externalId "learnerlink:<name>"), PATCH members add/remove
//     in chunks of at most 100, or read-modify-PUT the group when PATCH is
//     not supported. Learners are removed only from groups learnerlink
//     manages: those it created and Config.ManagedGroups. Current
//     membership is read from the user's "groups" attribute.
//   - Training tags (Target() is a connector.Enroller only when
//     Profile.TagsAttribute is set): Enroll adds Enrollment.ID to the
//     comma-separated tag list if missing.
//   - Lister: startIndex (1-based) + count = min of maxResults and the
//     profile's MaxResults; the cursor is the next startIndex.
//   - Every HTTP request waits on the Limiter first. 429 and 503 are
//     reported to the Limiter's Pause with the Retry-After
//     (shared/retry.ParseRetryAfter: seconds or HTTP-date) and return a
//     Retryable *connector.Error carrying it; other 5xx, 401, 408, 412
//     and 409 on PUT/PATCH (a concurrent change) are Retryable; 404 is
//     NotFound; other 4xx are permanent.
//   - Every call first retries within itself (Config.Retry,
//     vendorhttp.Retry): 429/503 wait their Retry-After and are sent again
//     whatever the method; other 5xx (but 501), 408 and transport errors
//     are sent again for GET, PUT and PATCH (our PATCH operations set
//     values, so a repeat is harmless; see idempotent in http.go), never
//     for POST. 401, 409 and 412 are left to the callers. Responses are
//     read up to 8 MiB. Error text and logs carry no token, password or
//     learner value (vendor error details are redacted); logs name routes,
//     not URLs, because a filter holds values.
//
// # Vendor profiles, sources and confidence
//
// Tags as in TARGETS.md: [D] vendor documentation, [S] secondary,
// [I] our inference — verify on a sandbox.
//
// learnamp — learnamp.atlassian.net KB "SCIM User Provisioning"
// (1789657417) and "Okta" (404914275): SCIM 2.0 with Okta is the
// recommended method and syncs first/last name, primary email (the
// login), job title, department/team (primary team), manager, hire date,
// time zone, custom fields if configured, and active status; create,
// update, deactivate, reactivate [D]. Enabled by Learn Amp, which provides
// the credentials; base URL and auth form are not public (bearer token
// likely) [I]. No groups listed [D] → GroupsSupported false. Required
// userName, givenName, familyName, email [I from "email used for login"].
// FieldMap: title, enterprise department, employeeNumber, timezone, work
// locality [I: standard SCIM paths; their Okta app maps them].
//
// lessonly — intercom.help/lessonly articles 2792448 (Okta SCIM) and
// 3666593 (OneLogin SCIM): required userName, givenName, familyName and
// email [D]; location → enterprise costCenter and business unit →
// enterprise division [D, per TARGETS.md §3.2]; deactivation archives the
// user and removes their data from reporting, reactivation restores [D];
// Okta authenticates with Basic subdomain:SCIM-API-key, OneLogin with the
// key as a Bearer token against a base ending /scim/v2 [D] (use Basic or
// BearerToken accordingly). No groups, custom fields or roles via SCIM
// [D]. PATCH support unknown → discovered.
//
// easyllama — help.easyllama.com "SCIM Integration with Entra" and "SCIM
// Provisioning with Okta": base https://api.easyllama.com/scim/v2/<company
// id>, Bearer token from Settings › Integrations › API › Access Tokens;
// create, update, deactivate; learners need first and last name, admins
// also email; username format is the email; groups disabled by default
// [D] → GroupsSupported false. Training tags auto-assign courses and are
// a comma-separated list without spaces [D, Okta's EasyLlama SAML guide,
// attribute "training_tags"], but the SCIM attribute path for them is
// not public, so the profile leaves TagsAttribute empty (no Enroller)
// until EasyLlama confirms it; set it then [I].
//
// absorb-scim — docs.myabsorb.com/scim-api/v2/docs (users, groups):
// POST /Users requires userName and name [D]; DELETE is a soft delete
// [D]; groups can be read, replaced (PUT) and deleted [D]; filter
// operators incl. value paths, startIndex/count paging [D]. A user PATCH
// was not seen in the public pages, so the profile forces PUT [I]; group
// membership then goes through the group PUT fallback. Bearer token (4 h
// OAuth or long-lived) [D].
//
// generic — RFC 7643/7644 defaults: userName required, groups supported,
// enterprise-extension paths for department, employeeNumber, costCenter,
// division, organization; title; work locality for location.
//
// # Shared code
//
// Retry-After parsing comes from shared/retry (the absorb connector still
// has a private copy that could move to it). Filter paths are parsed with
// shared/scim/filter, our server's parser.
package scimout
