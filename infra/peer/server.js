// Peer SCIM 2.0 server for learnerlink's side-by-side benchmark
// (infra/bench/sidebyside.sh): SCIMMY's resources and express routers
// over in-memory maps, with bearer-token auth. Not shipped; nothing in
// learnerlink depends on it. It stores what it is sent and nothing more
// (no queue, no durable store), so it is a ceiling for "a SCIM endpoint
// in Node", not a product.
//
//   bash infra/peer/setup.sh                      # pinned deps into .stack/peer
//   cp infra/peer/server.js .stack/peer/ && PEER_TOKEN=secret PEER_PORT=8090 node .stack/peer/server.js
//
// (It runs from .stack/peer so Node finds the dependencies installed
// there; infra/bench/sidebyside.sh does all of this.)
// Base URL: http://127.0.0.1:$PEER_PORT/scim/v2 . Listens on loopback only.
import {randomUUID, timingSafeEqual} from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const token = process.env.PEER_TOKEN;
const port = Number(process.env.PEER_PORT || 8090);
if (!token) {
    console.error("peer: set PEER_TOKEN");
    process.exit(2);
}

const users = new Map();      // id -> User
const userNames = new Map();  // lower-cased userName -> id (uniqueness, and the filter Okta sends)
const groups = new Map();     // id -> Group
const groupNames = new Map(); // lower-cased displayName -> id

const notFound = (id) => new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
const taken = (what) => new SCIMMY.Types.Error(409, "uniqueness", `${what} is already in use`);

// stamp keeps created across writes and sets lastModified.
function stamp(prev) {
    const now = new Date().toISOString();
    return {created: prev?.meta?.created ?? now, lastModified: now};
}

// fastEq answers `attr eq "value"` from an index; undefined means "not
// that shape, match the slow way".
function fastEq(filter, attr, index, store) {
    if (!filter || filter.length !== 1) return undefined;
    const entries = Object.entries(filter[0]);
    if (entries.length !== 1 || entries[0][0].toLowerCase() !== attr.toLowerCase()) return undefined;
    const [op, value] = entries[0][1];
    if (op !== "eq" || typeof value !== "string") return undefined;
    const id = index.get(value.toLowerCase());
    return id ? [store.get(id)] : [];
}

// Okta and Entra send the enterprise extension (department, manager…).
SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .extend(SCIMMY.Schemas.EnterpriseUser, false)
    .ingress((resource, instance) => {
        const id = resource.id;
        const prev = id ? users.get(id) : undefined;
        if (id && !prev) throw notFound(id);
        const key = String(instance.userName).toLowerCase();
        const holder = userNames.get(key);
        if (holder && holder !== id) throw taken("userName");
        const rec = {...instance, id: id ?? randomUUID(), meta: stamp(prev)};
        delete rec.password; // write-only
        if (prev) userNames.delete(String(prev.userName).toLowerCase());
        userNames.set(key, rec.id);
        users.set(rec.id, rec);
        return rec;
    })
    .egress((resource) => {
        if (resource.id) {
            const u = users.get(resource.id);
            if (!u) throw notFound(resource.id);
            return u;
        }
        const all = fastEq(resource.filter, "userName", userNames, users) ?? [...users.values()];
        return resource.filter ? resource.filter.match(all) : all;
    })
    .degress((resource) => {
        const u = users.get(resource.id);
        if (!u) throw notFound(resource.id);
        users.delete(u.id);
        userNames.delete(String(u.userName).toLowerCase());
        for (const g of groups.values()) {
            if (g.members?.some(m => m.value === u.id)) g.members = g.members.filter(m => m.value !== u.id);
        }
    });

SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .ingress((resource, instance) => {
        const id = resource.id;
        const prev = id ? groups.get(id) : undefined;
        if (id && !prev) throw notFound(id);
        const key = String(instance.displayName).toLowerCase();
        const holder = groupNames.get(key);
        if (holder && holder !== id) throw taken("displayName");
        for (const m of instance.members ?? []) {
            if (!users.has(m.value)) throw new SCIMMY.Types.Error(400, "invalidValue", `member ${m.value} not found`);
        }
        const rec = {...instance, id: id ?? randomUUID(), meta: stamp(prev)};
        if (prev) groupNames.delete(String(prev.displayName).toLowerCase());
        groupNames.set(key, rec.id);
        groups.set(rec.id, rec);
        return rec;
    })
    .egress((resource) => {
        if (resource.id) {
            const g = groups.get(resource.id);
            if (!g) throw notFound(resource.id);
            return g;
        }
        const all = fastEq(resource.filter, "displayName", groupNames, groups) ?? [...groups.values()];
        return resource.filter ? resource.filter.match(all) : all;
    })
    .degress((resource) => {
        const g = groups.get(resource.id);
        if (!g) throw notFound(resource.id);
        groups.delete(g.id);
        groupNames.delete(String(g.displayName).toLowerCase());
    });

function bearerOK(header) {
    if (!header?.startsWith("Bearer ")) return false;
    const got = Buffer.from(header.slice(7));
    const want = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
}

const app = express();
app.disable("x-powered-by");
app.get("/healthz", (req, res) => res.send("ok\n"));
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.com/peer",
    handler: (request) => {
        if (!bearerOK(request.header("Authorization"))) throw new Error("Authorization not detected!");
        return "peer-admin";
    },
}));
app.listen(port, "127.0.0.1", () => console.log(`peer SCIM server (scimmy, in memory) on http://127.0.0.1:${port}/scim/v2`));
