//! Decoding of Kubernetes protobuf request bodies for the few kinds kubectl's generator
//! commands (`kubectl create namespace|secret|configmap|serviceaccount|role|rolebinding …`)
//! send as `application/vnd.kubernetes.protobuf`. Responses are always JSON, which those
//! clients accept too.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    MapStr,
    MapBytes,
    Msg(&'static [Field]),
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: false }
}

const fn r(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: true }
}

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    r(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Ty::Str),
];

const NAMESPACE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(&[r(1, "finalizers", Ty::Str)])),
    f(3, "status", Ty::Msg(&[f(1, "phase", Ty::Str)])),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapBytes),
    f(3, "type", Ty::Str),
    f(4, "stringData", Ty::MapStr),
    f(5, "immutable", Ty::Bool),
];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
    f(4, "immutable", Ty::Bool),
];

const OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(2, "namespace", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
];

const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    r(2, "secrets", Ty::Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Ty::Msg(&[f(1, "name", Ty::Str)])),
    f(4, "automountServiceAccountToken", Ty::Bool),
];

const POLICY_RULE: &[Field] = &[
    r(1, "verbs", Ty::Str),
    r(2, "apiGroups", Ty::Str),
    r(3, "resources", Ty::Str),
    r(4, "resourceNames", Ty::Str),
    r(5, "nonResourceURLs", Ty::Str),
];

const ROLE: &[Field] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), r(2, "rules", Ty::Msg(POLICY_RULE))];

const ROLE_BINDING: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    r(
        2,
        "subjects",
        Ty::Msg(&[f(1, "kind", Ty::Str), f(2, "apiGroup", Ty::Str), f(3, "name", Ty::Str), f(4, "namespace", Ty::Str)]),
    ),
    f(3, "roleRef", Ty::Msg(&[f(1, "apiGroup", Ty::Str), f(2, "kind", Ty::Str), f(3, "name", Ty::Str)])),
];

const TYPE_META: &[Field] = &[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)];
const UNKNOWN: &[Field] = &[f(1, "typeMeta", Ty::Msg(TYPE_META)), f(2, "raw", Ty::Bytes)];

fn schema_for(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Namespace" => NAMESPACE,
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(len)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn skip(&mut self, wire: u64) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => {
                self.pos += 8;
                Some(())
            }
            2 => self.bytes().map(|_| ()),
            5 => {
                self.pos += 4;
                Some(())
            }
            _ => None,
        }
    }
}

fn decode_message(buf: &[u8], schema: &[Field]) -> Option<Value> {
    let mut out = Map::new();
    let mut rd = Reader { buf, pos: 0 };
    while rd.pos < buf.len() {
        let tag = rd.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some(field) = schema.iter().find(|fl| fl.num == num) else {
            rd.skip(wire)?;
            continue;
        };
        let value = match field.ty {
            Ty::Int => json!(rd.varint()? as i64),
            Ty::Bool => json!(rd.varint()? != 0),
            Ty::Str => {
                let text = String::from_utf8_lossy(rd.bytes()?).into_owned();
                // Go's protobuf encoding writes empty strings that JSON would omit.
                if text.is_empty() && !field.repeated {
                    continue;
                }
                json!(text)
            }
            Ty::Bytes => json!(base64::engine::general_purpose::STANDARD.encode(rd.bytes()?)),
            Ty::Msg(sub) => decode_message(rd.bytes()?, sub)?,
            Ty::Time => {
                let t = decode_message(rd.bytes()?, &[f(1, "seconds", Ty::Int)])?;
                match t["seconds"].as_i64().and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
                    Some(ts) => json!(ts.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    None => continue,
                }
            }
            Ty::MapStr | Ty::MapBytes => {
                let value_ty = if matches!(field.ty, Ty::MapStr) { Ty::Str } else { Ty::Bytes };
                let entry = decode_message(rd.bytes()?, &[f(1, "k", Ty::Str), f(2, "v", value_ty)])?;
                let key = entry["k"].as_str().unwrap_or_default().to_string();
                let v = entry.get("v").cloned().unwrap_or(json!(""));
                if let Some(m) = out.entry(field.name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(key, v);
                }
                continue;
            }
        };
        if field.repeated {
            if let Some(a) = out.entry(field.name).or_insert_with(|| json!([])).as_array_mut() {
                a.push(value);
            }
        } else {
            out.insert(field.name.to_string(), value);
        }
    }
    Some(Value::Object(out))
}

/// Decodes a `k8s\0`-framed protobuf body into the object's JSON form.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let bad = |why: &str| ApiError::bad_request(format!("unable to decode protobuf body: {why}"));
    let framed = body.strip_prefix(b"k8s\0").ok_or_else(|| bad("missing k8s magic prefix"))?;
    let unknown = decode_message(framed, UNKNOWN).ok_or_else(|| bad("malformed envelope"))?;
    let kind = unknown["typeMeta"]["kind"].as_str().unwrap_or_default().to_string();
    let api_version = unknown["typeMeta"]["apiVersion"].as_str().unwrap_or_default().to_string();
    let schema = schema_for(&kind).ok_or_else(|| {
        ApiError::unsupported_media_type_message(&format!(
            "kube-double decodes protobuf only for Namespace, Secret, ConfigMap, ServiceAccount and RBAC kinds, not {kind}; send JSON (e.g. `kubectl apply -f`)"
        ))
    })?;
    let raw = unknown["raw"].as_str().unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| bad("raw"))?;
    let mut obj = decode_message(&raw, schema).ok_or_else(|| bad("malformed object"))?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret() {
        let meta = [field(1, b"s"), field(3, b"ns"), field(11, &[field(1, b"a"), field(2, b"b")].concat())].concat();
        let secret =
            [field(1, &meta), field(4, &[field(1, b"user"), field(2, b"admin")].concat()), field(3, b"Opaque")]
                .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let obj = decode(&body).expect("decodes");
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns", "labels": {"a": "b"}},
                "stringData": {"user": "admin"}, "type": "Opaque"})
        );
    }
}
