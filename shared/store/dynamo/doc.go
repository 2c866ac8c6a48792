// Package dynamo is the Amazon DynamoDB store.Store: one table, no Scan.
//
// Item types (S = string; "A" is the main item of an entity):
//
//	item          PK                 SK                   GSI1PK / GSI1SK        GSI2PK / GSI2SK         GSI3PK / GSI3SK
//	identity      USER#<id>          A                    USERS / <id>  (live)   EXT#<extId> / <id> (extId set; tombstones too)  PENDING / <since>#<id> (pending)
//	userName      USERNAME#<folded>  A                    -                      -                       -
//	group         GROUP#<id>         A                    GROUPS / <id>          -                       -
//	displayName   GROUPNAME#<folded> A                    -                      -                       -
//	member        GROUP#<gid>        MEMBER#<uid>         -                      -                       -
//	member-of     USER#<uid>         MEMBEROF#<gid>       -                      -                       -
//	link          USER#<id>          LINK#<target>        TARGET#<target> / <id> -                       -
//	audit         USER#<id>          AUDIT#<time>#<rand>  -                      -                       -   (expiresAt TTL)
//	doc           DOC#<kind>         <id>                 -                      -                       -   (expiresAt TTL when Expires set)
//	rename marker GROUP#<id>         BUMP                 -                      -                       GROUPBUMPS / <since>#<id>
//
// A doc item (store.Doc "<kind>/<id>") holds value (B, omitted when empty)
// and version (N); expiresAt is its Expires in epoch seconds, rounded up.
// Reads treat expiresAt <= now as absent before TTL removes the item, and
// PutDoc's conditions do too: create is attribute_not_exists(PK) OR
// expiresAt <= :now, update is version = :v AND the item is unexpired.
// ListDocs queries the DOC#<kind> partition (strongly consistent) with a
// filter on expiresAt.
//
// Attribute names: see the Attr* and Index* constants; GSI1 and GSI2 project
// ALL, GSI3 (pending, sparse) projects id, version and pendingSince. Times
// are UTC RFC 3339 with a fixed nine-digit fraction so that string order is
// time order ("<since>" and "<time>" above). <folded> is
// store.FoldUserName of the userName or displayName.
//
// A tombstone keeps its GSI2 keys so FindTombstonesByExternalID can find
// it; tombstones written before that change lack them and are not found.
//
// Consistency: point reads (GetItem, Query on a partition, BatchGetItem) are
// strongly consistent; listings, counts, externalId lookups and ListPending
// go through GSIs and are eventually consistent. Uniqueness of userName and
// displayName is enforced by the USERNAME#/GROUPNAME# items, written in the
// same TransactWriteItems as the entity with attribute_not_exists
// conditions; every entity write is conditional on its version.
//
// Large writes: a transaction holds at most 100 items, and a membership
// change costs three (member, member-of, identity version bump). CreateGroup,
// UpdateGroup, DeleteGroup and DeleteIdentity therefore validate every member
// id first, then apply the change in atomic chunks: the first chunk carries
// the group's (or identity's) own write with its conditions, so a rejected
// write changes nothing; later chunks each keep a membership and its version
// bump together. A crash between chunks leaves the first chunks applied;
// the caller's retry (or the next change) converges.
//
// Renames: a new displayName changes every member's desired state, so every
// member is bumped. When that fits in the first transaction the rename is
// atomic. Otherwise the first transaction also writes a rename marker (the
// group's version whose members still need bumping, a cursor "after" in
// member-id order, and pendingSince, the time of its last progress, which
// keys it in GSI3 under GROUPBUMPS). The remaining members are then bumped
// 99 a transaction, each transaction also moving the cursor (conditioned
// on the marker's version), and the last one deletes the marker. If the
// writer dies, FinishGroupWrites (run by the sweeper) picks up markers
// without progress for the pending threshold and carries on from the
// cursor (moved atomically with the bumps, so no member the cursor passed
// is bumped again; only members added by the write itself may be bumped
// twice). A later
// rename replaces the marker and DeleteGroup deletes it: both bump every
// member themselves.
//
// For template.yaml (AWS::DynamoDB::Table):
//
//	BillingMode: PAY_PER_REQUEST
//	AttributeDefinitions: PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK, GSI3SK (all AttributeType S)
//	KeySchema: PK HASH, SK RANGE
//	GlobalSecondaryIndexes:
//	  - IndexName: GSI1, KeySchema: GSI1PK HASH, GSI1SK RANGE, Projection: {ProjectionType: ALL}
//	  - IndexName: GSI2, KeySchema: GSI2PK HASH, GSI2SK RANGE, Projection: {ProjectionType: ALL}
//	  - IndexName: GSI3, KeySchema: GSI3PK HASH, GSI3SK RANGE,
//	    Projection: {ProjectionType: INCLUDE, NonKeyAttributes: [id, version, pendingSince]}
//	TimeToLiveSpecification: {AttributeName: expiresAt, Enabled: true}
//
// IAM: GetItem, PutItem, UpdateItem, DeleteItem, Query, BatchGetItem,
// TransactWriteItems (ConditionCheckItem included) on the table and
// table/index/*. The sweeper's ListPending needs only Query on GSI3;
// its FinishGroupWrites also reads and writes the table (GetItem, Query,
// BatchGetItem, TransactWriteItems).
package dynamo
