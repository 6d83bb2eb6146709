// Validates Kubernetes objects against the API schemas, offline, with the
// npm package kubernetes-models (its validators are compiled from the
// Kubernetes OpenAPI schemas). Reads a JSON array of objects on stdin and
// prints a JSON array with one entry per object: {"kind", "name", "errors"}.
//
// The schemas accept fields they do not define, so a misspelt field would
// pass; this script also reports every field the validator never looked at
// (it validates a proxy of each object and records what it reads), except
// in maps (labels, data, resource quantities), whose keys it enumerates.

"use strict";

function schemaErrors(object) {
  const errors = [];
  const apiVersion = object.apiVersion || "";
  let models;
  try {
    models = require(`kubernetes-models/${apiVersion}`);
  } catch (e) {
    return [`no schema for apiVersion '${apiVersion}'`];
  }
  const Model = models[object.kind];
  if (typeof Model !== "function" || typeof Model.prototype.validate !== "function") {
    return [`no schema for kind '${object.kind}' of ${apiVersion}`];
  }
  // Every object read by the validator, with the keys it asked about.
  const read = new Map();
  const enumerated = new Set();
  const wrap = (value, path) => {
    if (value === null || typeof value !== "object") return value;
    const copy = Array.isArray(value)
      ? value.map((v, i) => wrap(v, `${path}[${i}]`))
      : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wrap(v, `${path}.${k}`)]));
    const keys = new Set();
    read.set(path, { keys, value });
    const note = (k) => { if (typeof k === "string") keys.add(k); };
    return new Proxy(copy, {
      get(t, k, r) { note(k); return Reflect.get(t, k, r); },
      has(t, k) { note(k); return Reflect.has(t, k); },
      getOwnPropertyDescriptor(t, k) { note(k); return Reflect.getOwnPropertyDescriptor(t, k); },
      ownKeys(t) { enumerated.add(path); return Reflect.ownKeys(t); },
    });
  };
  try {
    Model.prototype.validate.call(wrap(object, ""));
  } catch (e) {
    errors.push(String(e.message || e));
  }
  for (const [path, { keys, value }] of read) {
    if (Array.isArray(value) || enumerated.has(path)) continue;
    for (const key of Object.keys(value)) {
      if (!keys.has(key)) errors.push(`${path}.${key}: not a field of the schema`);
    }
  }
  return errors;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const objects = JSON.parse(input);
  const out = objects.map((o) => ({
    kind: o.kind,
    name: (o.metadata || {}).name,
    errors: schemaErrors(o),
  }));
  process.stdout.write(JSON.stringify(out) + "\n");
});
