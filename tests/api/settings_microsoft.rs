//! Microsoft settings at three scopes: per-field inheritance, merge patch, ETags.

use m365_sync::domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, spawn_app};

struct Scopes {
    app: TestApp,
    admin: Account,
    org: uuid::Uuid,
    user: Account,
}

impl Scopes {
    async fn new() -> Self {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let org = app.organization(&admin, "Acme").await;
        let user = app.account(Role::User, Some(org)).await;
        Self {
            app,
            admin,
            org,
            user,
        }
    }

    fn global(&self) -> String {
        "/api/v1/settings/microsoft".to_owned()
    }

    fn organization(&self) -> String {
        format!("/api/v1/organizations/{}/settings/microsoft", self.org)
    }

    fn user(&self) -> String {
        format!("/api/v1/users/{}/settings/microsoft", self.user.id)
    }

    async fn patch(&self, path: &str, body: Value) -> Value {
        let response = self.app.patch(path, &self.admin.token, body).await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        response.body
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.app.get(path, &self.admin.token).await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        response.body
    }
}

fn leaf(value: impl Into<Value>, source: &str, overridden: bool) -> Value {
    json!({"value": value.into(), "source": source, "overridden": overridden})
}

#[tokio::test]
async fn every_scope_shows_defaults_when_nothing_is_set() {
    let s = Scopes::new().await;
    for (path, scope) in [
        (s.global(), "global"),
        (s.organization(), "organization"),
        (s.user(), "user"),
    ] {
        let view = s.get(&path).await;
        assert_eq!(view["scope"], scope);
        assert_eq!(
            view["sync_interval_minutes"],
            leaf(30, "default", false),
            "{scope}"
        );
        assert_eq!(
            view["calendar"]["enabled"],
            leaf(false, "default", false),
            "{scope}"
        );
        assert_eq!(
            view["tasks"]["direction"],
            leaf("bidirectional", "default", false),
            "{scope}"
        );
        assert_eq!(
            view["calendar"]["conflict_resolution"],
            json!({"value": "local_wins", "source": "default", "overridden": false, "applicable": true})
        );
        assert_eq!(
            view["integrations"]["emails"],
            leaf(true, "default", false),
            "{scope}"
        );
    }
}

#[tokio::test]
async fn each_field_falls_back_scope_by_scope() {
    let s = Scopes::new().await;
    // Arrange a value at each scope, one scope at a time, checking what each scope sees.
    s.patch(&s.global(), json!({"sync_interval_minutes": 15}))
        .await;
    assert_eq!(
        s.get(&s.global()).await["sync_interval_minutes"],
        leaf(15, "global", true)
    );
    assert_eq!(
        s.get(&s.organization()).await["sync_interval_minutes"],
        leaf(15, "global", false)
    );
    assert_eq!(
        s.get(&s.user()).await["sync_interval_minutes"],
        leaf(15, "global", false)
    );

    s.patch(&s.organization(), json!({"sync_interval_minutes": 20}))
        .await;
    assert_eq!(
        s.get(&s.organization()).await["sync_interval_minutes"],
        leaf(20, "organization", true)
    );
    assert_eq!(
        s.get(&s.user()).await["sync_interval_minutes"],
        leaf(20, "organization", false)
    );
    assert_eq!(
        s.get(&s.global()).await["sync_interval_minutes"],
        leaf(15, "global", true)
    );

    let view = s
        .patch(&s.user(), json!({"sync_interval_minutes": 25}))
        .await;
    assert_eq!(view["sync_interval_minutes"], leaf(25, "user", true));
    assert_eq!(
        s.get(&s.organization()).await["sync_interval_minutes"],
        leaf(20, "organization", true)
    );

    // null: "Use Organization", then "Use System", then the default.
    let view = s
        .patch(&s.user(), json!({"sync_interval_minutes": null}))
        .await;
    assert_eq!(
        view["sync_interval_minutes"],
        leaf(20, "organization", false)
    );
    s.patch(&s.organization(), json!({"sync_interval_minutes": null}))
        .await;
    assert_eq!(
        s.get(&s.user()).await["sync_interval_minutes"],
        leaf(15, "global", false)
    );
    s.patch(&s.global(), json!({"sync_interval_minutes": null}))
        .await;
    assert_eq!(
        s.get(&s.user()).await["sync_interval_minutes"],
        leaf(30, "default", false)
    );
}

#[tokio::test]
async fn nested_fields_merge_independently_across_scopes() {
    let s = Scopes::new().await;
    s.patch(
        &s.global(),
        json!({"calendar": {"conflict_resolution": "most_recent_wins"}}),
    )
    .await;
    s.patch(
        &s.organization(),
        json!({"calendar": {"direction": "to_microsoft"}}),
    )
    .await;
    let view = s
        .patch(&s.user(), json!({"calendar": {"enabled": true}}))
        .await;

    assert_eq!(view["calendar"]["enabled"], leaf(true, "user", true));
    assert_eq!(
        view["calendar"]["direction"],
        leaf("to_microsoft", "organization", false)
    );
    assert_eq!(
        view["calendar"]["conflict_resolution"],
        json!({"value": "most_recent_wins", "source": "global", "overridden": false, "applicable": false}),
        "conflict resolution applies only to bidirectional sync"
    );
    assert_eq!(
        view["tasks"]["enabled"],
        leaf(false, "default", false),
        "tasks are untouched"
    );

    // A null object removes all its members at this scope.
    s.patch(
        &s.user(),
        json!({"calendar": {"direction": "bidirectional"}}),
    )
    .await;
    let view = s.patch(&s.user(), json!({"calendar": null})).await;
    assert_eq!(view["calendar"]["enabled"], leaf(false, "default", false));
    assert_eq!(
        view["calendar"]["direction"],
        leaf("to_microsoft", "organization", false)
    );
}

#[tokio::test]
async fn integrations_can_be_set_only_at_global_and_organization_scope() {
    let s = Scopes::new().await;
    s.patch(&s.global(), json!({"integrations": {"emails": false}}))
        .await;
    let view = s
        .patch(&s.organization(), json!({"integrations": {"tasks": false}}))
        .await;
    assert_eq!(view["integrations"]["emails"], leaf(false, "global", false));
    assert_eq!(
        view["integrations"]["tasks"],
        leaf(false, "organization", true)
    );
    assert_eq!(
        s.get(&s.user()).await["integrations"]["tasks"],
        leaf(false, "organization", false)
    );

    let response = s
        .app
        .patch(
            &s.user(),
            &s.admin.token,
            json!({"integrations": {"tasks": true}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.body["errors"][0]["pointer"], "/integrations");
}

#[tokio::test]
async fn a_user_without_organization_falls_back_to_global() {
    let s = Scopes::new().await;
    s.patch(&s.global(), json!({"tasks": {"enabled": true}}))
        .await;
    let view = s
        .get(&format!("/api/v1/users/{}/settings/microsoft", s.admin.id))
        .await;
    assert_eq!(view["tasks"]["enabled"], leaf(true, "global", false));
}

#[tokio::test]
async fn etag_follows_the_scope_version_and_if_match_guards_changes() {
    let s = Scopes::new().await;
    let url = format!("{}{}", s.app.address, s.user());
    let first = s.app.get(&s.user(), &s.user.token).await;
    assert_eq!(first.etag(), "\"0\"");
    let changed = s
        .app
        .patch(
            &s.user(),
            &s.user.token,
            json!({"tasks": {"enabled": true}}),
        )
        .await;
    assert_eq!(changed.etag(), "\"1\"");
    let unchanged = s
        .app
        .patch(
            &s.user(),
            &s.user.token,
            json!({"tasks": {"enabled": true}}),
        )
        .await;
    assert_eq!(
        unchanged.etag(),
        "\"1\"",
        "a patch that changes nothing writes nothing"
    );

    let stale = s
        .app
        .client
        .patch(&url)
        .bearer_auth(&s.user.token)
        .header("if-match", "\"0\"")
        .json(&json!({"tasks": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let fresh = s
        .app
        .client
        .patch(&url)
        .bearer_auth(&s.user.token)
        .header("if-match", "\"1\"")
        .json(&json!({"tasks": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(
        s.get(&s.user()).await["tasks"]["enabled"],
        leaf(false, "user", true)
    );
}

#[tokio::test]
async fn a_rejected_patch_changes_nothing() {
    let s = Scopes::new().await;
    s.patch(&s.user(), json!({"sync_interval_minutes": 10}))
        .await;
    let before = s.app.get(&s.user(), &s.admin.token).await;
    for body in [
        json!({"sync_interval_minutes": 5, "calendar": {"direction": "sideways"}}),
        json!({"sync_interval_minutes": 0}),
        json!({"sync_interval_minutes": 5, "unknown": 1}),
        json!({"sync_interval_minutes": 5, "integrations": {"emails": true}}),
    ] {
        let response = s.app.patch(&s.user(), &s.admin.token, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let after = s.app.get(&s.user(), &s.admin.token).await;
    assert_eq!(after.body, before.body);
    assert_eq!(after.etag(), before.etag());
}

#[tokio::test]
async fn concurrent_patches_of_different_fields_all_apply() {
    let s = Scopes::new().await;
    let fields = [
        json!({"sync_interval_minutes": 42}),
        json!({"calendar": {"enabled": true}}),
        json!({"calendar": {"direction": "from_microsoft"}}),
        json!({"tasks": {"enabled": true}}),
        json!({"tasks": {"conflict_resolution": "manual"}}),
    ];
    let path = s.user();
    let requests = fields
        .iter()
        .map(|body| s.app.patch(&path, &s.admin.token, body.clone()));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
    }
    let view = s.get(&path).await;
    assert_eq!(view["sync_interval_minutes"]["value"], 42);
    assert_eq!(view["calendar"]["enabled"]["value"], true);
    assert_eq!(view["calendar"]["direction"]["value"], "from_microsoft");
    assert_eq!(view["tasks"]["enabled"]["value"], true);
    assert_eq!(view["tasks"]["conflict_resolution"]["value"], "manual");
}
