use super::*;
use crate::context::AuthMethod;

fn principal(scopes: &[&str], roles: &[&str], claims: Value) -> Principal {
    Principal {
        subject: "u".into(),
        method: AuthMethod::Jwt("i".into()),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        roles: roles.iter().map(|s| (*s).to_owned()).collect(),
        client_id: None,
        expires_at: None,
        claims: claims.as_object().cloned().unwrap_or_default(),
    }
}

fn authorize(toml_text: &str) -> Authorize {
    let config: AuthorizeConfig = toml::from_str(toml_text).unwrap_or_default();
    let mut rbac = BTreeMap::new();
    rbac.insert(
        "writer".to_owned(),
        vec!["orders.read".to_owned(), "orders.write".to_owned()],
    );
    rbac.insert("reader".to_owned(), vec!["orders.read".to_owned()]);
    Authorize::new(&config, Arc::new(rbac))
}

#[test]
fn all_listed_scopes_are_required() {
    let a = authorize("scopes = [\"orders:read\", \"orders:write\"]");
    assert!(
        a.check(&principal(
            &["orders:read", "orders:write", "x"],
            &[],
            Value::Null
        ))
        .is_ok()
    );
    assert!(
        matches!(a.check(&principal(&["orders:read"], &[], Value::Null)), Err(Shortfall::Scope(s)) if s == "orders:read orders:write")
    );
}

#[test]
fn any_scopes_needs_one() {
    let a = authorize("any_scopes = [\"a\", \"b\"]");
    assert!(a.check(&principal(&["b"], &[], Value::Null)).is_ok());
    assert!(a.check(&principal(&["c"], &[], Value::Null)).is_err());
}

#[test]
fn permissions_come_only_from_the_rbac_table() {
    let a = authorize("permissions = [\"orders.write\"]");
    assert!(a.check(&principal(&[], &["writer"], Value::Null)).is_ok());
    assert!(a.check(&principal(&[], &["reader"], Value::Null)).is_err());
    assert!(
        a.check(&principal(&[], &["orders.write"], Value::Null))
            .is_err(),
        "a role named like a permission grants nothing"
    );
}

#[test]
fn claims_must_match_exactly() {
    let a = authorize("claims = { tenant = \"acme\", groups = \"ops\" }");
    let ok = serde_json::json!({"tenant": "acme", "groups": ["dev", "ops"]});
    assert!(a.check(&principal(&[], &[], ok)).is_ok());
    let other = serde_json::json!({"tenant": "acme-evil", "groups": ["ops"]});
    assert!(a.check(&principal(&[], &[], other)).is_err());
    assert!(
        a.check(&principal(&[], &[], serde_json::json!({"groups": ["ops"]})))
            .is_err()
    );
}
