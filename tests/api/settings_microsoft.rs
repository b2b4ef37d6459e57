//! Microsoft settings at three scopes: per-field inheritance, merge patch, ETags.
//!
//! Calls go through the SDK; patches with `null` members (which the SDK leaves out) and bodies
//! the SDK refuses to build go as raw HTTP.

use m365_sync::domain::Role;
use m365_sync_sdk::{Client, types};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Account, SdkResult, TestApp, etag, problem, spawn_app, to_json, typed};

struct Scopes {
    app: TestApp,
    admin: Account,
    org: uuid::Uuid,
    user: Account,
    api: Client,
}

/// Which scope a call is about.
#[derive(Clone, Copy, Debug)]
enum Scope {
    Global,
    Organization,
    User,
}

impl Scopes {
    async fn new() -> Self {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let org = app.organization(&admin, "Acme").await;
        let user = app.account(Role::User, Some(org)).await;
        let api = app.sdk(&admin.token);
        Self {
            app,
            admin,
            org,
            user,
            api,
        }
    }

    fn path(&self, scope: Scope) -> String {
        match scope {
            Scope::Global => "/api/v1/settings/microsoft".to_owned(),
            Scope::Organization => format!("/api/v1/organizations/{}/settings/microsoft", self.org),
            Scope::User => format!("/api/v1/users/{}/settings/microsoft", self.user.id),
        }
    }

    /// `GET` of a scope's view through `api`.
    async fn read(&self, api: &Client, scope: Scope) -> SdkResult<types::MicrosoftSettingsView> {
        match scope {
            Scope::Global => api.get_global_microsoft_settings().await,
            Scope::Organization => api.get_organization_microsoft_settings(&self.org).await,
            Scope::User => api.get_user_microsoft_settings(&self.user.id).await,
        }
    }

    /// `PATCH` of a scope through `api` with a merge patch given as JSON.
    async fn write(
        &self,
        api: &Client,
        scope: Scope,
        if_match: Option<&str>,
        body: &Value,
    ) -> SdkResult<types::MicrosoftSettingsView> {
        match scope {
            Scope::Global => {
                api.update_global_microsoft_settings(if_match, &typed(body))
                    .await
            }
            Scope::Organization => {
                api.update_organization_microsoft_settings(&self.org, if_match, &typed(body))
                    .await
            }
            Scope::User => {
                api.update_user_microsoft_settings(&self.user.id, if_match, &typed(body))
                    .await
            }
        }
    }

    /// The admin patches a scope (through the SDK); answers the view as JSON.
    async fn patch(&self, scope: Scope, body: Value) -> Value {
        let response = self.write(&self.api, scope, None, &body).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
        to_json(&response.into_inner())
    }

    /// The admin patches a scope over raw HTTP: for `null` members, which the SDK leaves out.
    async fn patch_raw(&self, scope: Scope, body: Value) -> Value {
        let response = self
            .app
            .patch(&self.path(scope), &self.admin.token, body)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        response.body
    }

    /// The admin reads a scope (through the SDK); answers the view as JSON.
    async fn get(&self, scope: Scope) -> Value {
        let response = self.read(&self.api, scope).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
        to_json(&response.into_inner())
    }
}

fn leaf(value: impl Into<Value>, source: &str, overridden: bool) -> Value {
    json!({"value": value.into(), "source": source, "overridden": overridden})
}

#[tokio::test]
async fn every_scope_shows_defaults_when_nothing_is_set() {
    let s = Scopes::new().await;
    for (scope, name) in [
        (Scope::Global, "global"),
        (Scope::Organization, "organization"),
        (Scope::User, "user"),
    ] {
        let view = s.get(scope).await;
        assert_eq!(view["scope"], name);
        assert_eq!(
            view["sync_interval_minutes"],
            leaf(30, "default", false),
            "{name}"
        );
        assert_eq!(
            view["calendar"]["enabled"],
            leaf(false, "default", false),
            "{name}"
        );
        assert_eq!(
            view["tasks"]["direction"],
            leaf("bidirectional", "default", false),
            "{name}"
        );
        assert_eq!(
            view["calendar"]["conflict_resolution"],
            json!({"value": "local_wins", "source": "default", "overridden": false, "applicable": true})
        );
        assert_eq!(
            view["integrations"]["emails"],
            leaf(true, "default", false),
            "{name}"
        );
    }
}

#[tokio::test]
async fn each_field_falls_back_scope_by_scope() {
    let s = Scopes::new().await;
    // Arrange a value at each scope, one scope at a time, checking what each scope sees.
    s.patch(Scope::Global, json!({"sync_interval_minutes": 15}))
        .await;
    assert_eq!(
        s.get(Scope::Global).await["sync_interval_minutes"],
        leaf(15, "global", true)
    );
    assert_eq!(
        s.get(Scope::Organization).await["sync_interval_minutes"],
        leaf(15, "global", false)
    );
    assert_eq!(
        s.get(Scope::User).await["sync_interval_minutes"],
        leaf(15, "global", false)
    );

    s.patch(Scope::Organization, json!({"sync_interval_minutes": 20}))
        .await;
    assert_eq!(
        s.get(Scope::Organization).await["sync_interval_minutes"],
        leaf(20, "organization", true)
    );
    assert_eq!(
        s.get(Scope::User).await["sync_interval_minutes"],
        leaf(20, "organization", false)
    );
    assert_eq!(
        s.get(Scope::Global).await["sync_interval_minutes"],
        leaf(15, "global", true)
    );

    let view = s
        .patch(Scope::User, json!({"sync_interval_minutes": 25}))
        .await;
    assert_eq!(view["sync_interval_minutes"], leaf(25, "user", true));
    assert_eq!(
        s.get(Scope::Organization).await["sync_interval_minutes"],
        leaf(20, "organization", true)
    );

    // null: "Use Organization", then "Use System", then the default.
    let view = s
        .patch_raw(Scope::User, json!({"sync_interval_minutes": null}))
        .await;
    assert_eq!(
        view["sync_interval_minutes"],
        leaf(20, "organization", false)
    );
    s.patch_raw(Scope::Organization, json!({"sync_interval_minutes": null}))
        .await;
    assert_eq!(
        s.get(Scope::User).await["sync_interval_minutes"],
        leaf(15, "global", false)
    );
    s.patch_raw(Scope::Global, json!({"sync_interval_minutes": null}))
        .await;
    assert_eq!(
        s.get(Scope::User).await["sync_interval_minutes"],
        leaf(30, "default", false)
    );
}

#[tokio::test]
async fn nested_fields_merge_independently_across_scopes() {
    let s = Scopes::new().await;
    s.patch(
        Scope::Global,
        json!({"calendar": {"conflict_resolution": "most_recent_wins"}}),
    )
    .await;
    s.patch(
        Scope::Organization,
        json!({"calendar": {"direction": "to_microsoft"}}),
    )
    .await;
    let view = s
        .patch(Scope::User, json!({"calendar": {"enabled": true}}))
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
        Scope::User,
        json!({"calendar": {"direction": "bidirectional"}}),
    )
    .await;
    let view = s.patch_raw(Scope::User, json!({"calendar": null})).await;
    assert_eq!(view["calendar"]["enabled"], leaf(false, "default", false));
    assert_eq!(
        view["calendar"]["direction"],
        leaf("to_microsoft", "organization", false)
    );
}

#[tokio::test]
async fn integrations_can_be_set_only_at_global_and_organization_scope() {
    let s = Scopes::new().await;
    s.patch(Scope::Global, json!({"integrations": {"emails": false}}))
        .await;
    let view = s
        .patch(
            Scope::Organization,
            json!({"integrations": {"tasks": false}}),
        )
        .await;
    assert_eq!(view["integrations"]["emails"], leaf(false, "global", false));
    assert_eq!(
        view["integrations"]["tasks"],
        leaf(false, "organization", true)
    );
    assert_eq!(
        s.get(Scope::User).await["integrations"]["tasks"],
        leaf(false, "organization", false)
    );

    // The SDK's user-scope patch has no `integrations`: the service must refuse it too.
    let response = s
        .app
        .patch(
            &s.path(Scope::User),
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
    s.patch(Scope::Global, json!({"tasks": {"enabled": true}}))
        .await;
    let view = s
        .api
        .get_user_microsoft_settings(&s.admin.id)
        .await
        .unwrap();
    assert_eq!(view.status(), StatusCode::OK);
    assert_eq!(
        to_json(&view.into_inner())["tasks"]["enabled"],
        leaf(true, "global", false)
    );
}

#[tokio::test]
async fn etag_follows_the_scope_version_and_if_match_guards_changes() {
    let s = Scopes::new().await;
    let user_api = s.app.sdk(&s.user.token);
    let first = s.read(&user_api, Scope::User).await.unwrap();
    assert_eq!(etag(&first), "\"0\"");
    let enable = json!({"tasks": {"enabled": true}});
    let changed = s
        .write(&user_api, Scope::User, None, &enable)
        .await
        .unwrap();
    assert_eq!(etag(&changed), "\"1\"");
    let unchanged = s
        .write(&user_api, Scope::User, None, &enable)
        .await
        .unwrap();
    assert_eq!(
        etag(&unchanged),
        "\"1\"",
        "a patch that changes nothing writes nothing"
    );

    let disable = json!({"tasks": {"enabled": false}});
    let stale = s
        .write(&user_api, Scope::User, Some("\"0\""), &disable)
        .await;
    problem(stale, StatusCode::PRECONDITION_FAILED);
    let fresh = s
        .write(&user_api, Scope::User, Some("\"1\""), &disable)
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(
        s.get(Scope::User).await["tasks"]["enabled"],
        leaf(false, "user", true)
    );
}

#[tokio::test]
async fn a_rejected_patch_changes_nothing() {
    let s = Scopes::new().await;
    s.patch(Scope::User, json!({"sync_interval_minutes": 10}))
        .await;
    let before = s.read(&s.api, Scope::User).await.unwrap();
    // Bodies the SDK's types refuse to build: sent as raw HTTP for the service to refuse.
    for body in [
        json!({"sync_interval_minutes": 5, "calendar": {"direction": "sideways"}}),
        json!({"sync_interval_minutes": 0}),
        json!({"sync_interval_minutes": 5, "unknown": 1}),
        json!({"sync_interval_minutes": 5, "integrations": {"emails": true}}),
    ] {
        let response = s
            .app
            .patch(&s.path(Scope::User), &s.admin.token, body.clone())
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let after = s.read(&s.api, Scope::User).await.unwrap();
    assert_eq!(etag(&after), etag(&before));
    assert_eq!(to_json(&after.into_inner()), to_json(&before.into_inner()));
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
    let requests = fields
        .iter()
        .map(|body| s.write(&s.api, Scope::User, None, body));
    for response in futures_util::future::join_all(requests).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    }
    let view = s.get(Scope::User).await;
    assert_eq!(view["sync_interval_minutes"]["value"], 42);
    assert_eq!(view["calendar"]["enabled"]["value"], true);
    assert_eq!(view["calendar"]["direction"]["value"], "from_microsoft");
    assert_eq!(view["tasks"]["enabled"]["value"], true);
    assert_eq!(view["tasks"]["conflict_resolution"]["value"], "manual");
}
