//! The OpenAPI document, collected from the `#[utoipa::path]` of every registered handler.
//!
//! Error responses are added here, once, to every operation they can happen on (so each
//! handler documents only its successes and its own conflicts): 400/413/415/422 where there is
//! a body, 400 where there is a query string, 401/403 where a token is needed, 404 where the
//! path has an id, 400 and 412 where `If-Match` is honoured, and 500 everywhere.
//!
//! Every secured operation accepts either credential: an access token (`bearer_auth`) or an
//! API key (`api_key`), both sent as `Authorization: Bearer`. The POSTs that create something
//! declare `Idempotency-Key` ([`Idempotency`]), and the middleware applies to exactly those.
//!
//! Every free text a client sends (request bodies and query strings) is declared free of
//! control characters here too ([`PlainText`]), as the service checks it.

use actix_web::App;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, HttpMethod, ObjectBuilder, OpenApi as Document, Ref, RefOr,
        ResponseBuilder, Schema, Type,
        path::{Operation, Parameter, ParameterIn},
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};
use utoipa_actix_web::AppExt;

use crate::{
    domain::{idempotency, item_fields::NOT_BLANK, plain_text},
    error::{FieldError, PROBLEM_JSON, Problem},
};

/// Static parts of the document: information, tags, shared schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "m365-sync",
        description = "Connects each user of a business application to Microsoft 365 and keeps \
their calendar events and tasks in sync with Outlook Calendar and Microsoft To Do.\n\n\
Errors are RFC 9457 `application/problem+json` bodies with a stable `code`. `PATCH` takes a \
JSON merge patch (RFC 7396). Mutable resources send an `ETag`; `PATCH` and `DELETE` honour \
`If-Match`.",
        license(name = "MIT", identifier = "MIT")
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "auth", description = "Access tokens"),
        (name = "users", description = "Users and the caller"),
        (name = "api_keys", description = "API keys of back ends and SDK users"),
        (name = "organizations", description = "Organizations"),
        (name = "settings", description = "Microsoft settings at global, organization and user scope"),
        (name = "microsoft", description = "Each user's Microsoft 365 connection: Connect, status, Check Connection, disconnect"),
        (name = "calendar", description = "Each user's local calendar events (the business application's side of calendar sync)"),
        (name = "tasks", description = "Each user's local tasks (the business application's side of task sync)"),
        (name = "sync", description = "Calendar and task synchronization: sync now, run history"),
        (name = "changes", description = "The change feed: what happened, in order (the events webhooks deliver)"),
        (name = "webhooks", description = "Outbound webhooks, signed per Standard Webhooks: endpoints, secrets, deliveries"),
        (name = "operations", description = "Health probes")
    )
)]
struct ApiDoc;

/// The complete OpenAPI document of the service.
pub fn document() -> Document {
    let (_, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    BearerAuth.modify(&mut doc);
    ErrorResponses.modify(&mut doc);
    Idempotency.modify(&mut doc);
    PlainText.modify(&mut doc);
    doc
}

/// The document as the committed `openapi/openapi.json` holds it.
///
/// # Errors
/// Only if serialization fails.
pub fn to_pretty_json() -> serde_json::Result<String> {
    document().to_pretty_json().map(|mut text| {
        text.push('\n');
        text
    })
}

struct BearerAuth;

impl BearerAuth {
    fn operations(doc: &mut Document) -> impl Iterator<Item = &mut Operation> {
        doc.paths.paths.values_mut().flat_map(|item| {
            [
                item.get.as_mut(),
                item.post.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
                item.put.as_mut(),
            ]
            .into_iter()
            .flatten()
        })
    }
}

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /api/v1/auth/token`, sent as \
                         `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("m365s_<43 base62 characters>")
                    .description(Some(
                        "An API key from `POST /api/v1/api-keys` (it starts with `m365s_`), \
                         sent as `Authorization: Bearer <key>`.",
                    ))
                    .build(),
            ),
        );
        // Either credential: the requirements of an operation are alternatives.
        for operation in Self::operations(doc) {
            if let Some(security) = operation.security.as_mut()
                && !security.is_empty()
            {
                security.push(SecurityRequirement::new("api_key", Vec::<String>::new()));
            }
        }
    }
}

/// Declares `Idempotency-Key` on the operations that take it (those whose handler lists the
/// header): its schema (the shared `IdempotencyKey`), what it does, the `Idempotent-Replayed`
/// header of a replayed answer, and the 400, 409 and 422 it may cause.
struct Idempotency;

impl Idempotency {
    const DESCRIPTION: &str = "Makes a retry safe (the IETF httpapi Idempotency-Key draft): \
the first response to this key (2xx and 4xx but 408 and 429) is kept 24 hours per caller, and \
the same request again (same method, path and body bytes) gets it back, status, headers and \
body, with `Idempotent-Replayed: true`. The same key with another request answers 422 \
`idempotency_key_reused`; while the first request is in flight, 409 \
`idempotency_key_in_flight`. A 5xx, 408 or 429 keeps nothing: the key may be used again.";

    /// Adds `addition` to the description of the `status` response (added if absent).
    fn extend(operation: &mut Operation, status: &str, addition: &str) {
        if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
            if !response.description.contains(addition) {
                response.description = format!("{}; {addition}", response.description);
            }
        } else {
            ErrorResponses::add(operation, status, addition);
        }
    }

    fn complete(operation: &mut Operation) -> bool {
        let mut declared = false;
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && parameter.parameter_in == ParameterIn::Header
                && parameter.name.eq_ignore_ascii_case(idempotency::HEADER)
            {
                parameter.schema = Some(Ref::from_schema_name("IdempotencyKey").into());
                parameter.description = Some(Self::DESCRIPTION.to_owned());
                declared = true;
            }
        }
        if !declared {
            return false;
        }
        for (status, response) in &mut operation.responses.responses {
            if status.starts_with('2')
                && let RefOr::T(response) = response
            {
                response.headers.insert(
                    "Idempotent-Replayed".to_owned(),
                    utoipa::openapi::HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(["true"])),
                        ))
                        .description(Some(
                            "`true` when this is the kept response of an earlier request with \
                             the same Idempotency-Key",
                        ))
                        .build()
                        .into(),
                );
            }
        }
        Self::extend(
            operation,
            "400",
            "`invalid_idempotency_key`: not 1 to 255 printable ASCII characters",
        );
        Self::extend(
            operation,
            "409",
            "`idempotency_key_in_flight`: a request with this Idempotency-Key is in progress \
             (see `Retry-After`)",
        );
        Self::extend(
            operation,
            "422",
            "`idempotency_key_reused`: this Idempotency-Key was used for another request",
        );
        true
    }
}

impl Modify for Idempotency {
    fn modify(&self, doc: &mut Document) {
        let mut any = false;
        for item in doc.paths.paths.values_mut() {
            if let Some(operation) = item.post.as_mut() {
                any |= Self::complete(operation);
            }
        }
        if any {
            let components = doc.components.get_or_insert_with(Default::default);
            components.schemas.insert(
                "IdempotencyKey".to_owned(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(idempotency::MAX_KEY_LEN))
                    .pattern(Some(idempotency::KEY_PATTERN))
                    .description(Some(
                        "A key the client chooses per request it may retry: 1 to 255 printable \
                         ASCII characters (a UUID, say), used as sent.",
                    ))
                    .into(),
            );
        }
    }
}

struct ErrorResponses;

impl ErrorResponses {
    /// `If-Match` is a plain string (an optional header is absent rather than `null`); its
    /// syntax is RFC 9110's (`*` or a list of entity tags), and a malformed value answers 400.
    fn describe_if_match(operation: &mut Operation) {
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && parameter.name == "If-Match"
            {
                parameter.schema = Some(ObjectBuilder::new().schema_type(Type::String).into());
            }
        }
    }

    fn add(operation: &mut Operation, status: &str, description: &str) {
        if operation.responses.responses.contains_key(status) {
            return;
        }
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .insert(status.to_owned(), response.into());
    }

    fn complete(operation: &mut Operation) {
        Self::describe_if_match(operation);
        let params: Vec<&Parameter> = operation
            .parameters
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| match p {
                RefOr::T(parameter) => Some(parameter),
                RefOr::Ref(_) => None,
            })
            .collect();
        let has = |location: ParameterIn| params.iter().any(|p| p.parameter_in == location);
        let (path, query) = (has(ParameterIn::Path), has(ParameterIn::Query));
        let if_match = params.iter().any(|p| p.name == "If-Match");
        let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        if operation.request_body.is_some() {
            Self::add(operation, "400", "Malformed JSON body");
            Self::add(operation, "408", "The body did not arrive in time");
            Self::add(operation, "413", "Body too large");
            Self::add(operation, "415", "Body is not JSON");
            Self::add(operation, "422", "Invalid fields (see `errors`)");
        }
        if query {
            Self::add(operation, "400", "Invalid query string");
            Self::add(
                operation,
                "422",
                "A query parameter holds control characters (see `errors`)",
            );
        }
        if secured {
            Self::add(operation, "401", "Missing or invalid bearer token");
            Self::add(operation, "403", "The caller may not do this");
        }
        if path {
            Self::add(
                operation,
                "404",
                "No such resource, or one the caller may not see",
            );
        }
        if if_match {
            Self::add(operation, "400", "Malformed `If-Match`");
            Self::add(
                operation,
                "412",
                "`If-Match` does not match the current `ETag`",
            );
        }
        Self::add(
            operation,
            "500",
            "Internal error (details are logged, not returned)",
        );
    }
}

impl Modify for ErrorResponses {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            for method in [
                HttpMethod::Get,
                HttpMethod::Post,
                HttpMethod::Patch,
                HttpMethod::Delete,
                HttpMethod::Put,
            ] {
                let operation = match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    HttpMethod::Delete => item.delete.as_mut(),
                    _ => item.put.as_mut(),
                };
                if let Some(operation) = operation {
                    Self::complete(operation);
                }
            }
        }
    }
}

/// Declares every string a client sends (in request bodies, at any depth, and as a query
/// parameter) free of control characters, as [`plain_text`] checks them: strings without a
/// pattern, format or enum get [`plain_text::SINGLE_LINE`] (or [`plain_text::MULTI_LINE`] for
/// the multi-line members), and the not-blank ones [`plain_text::NOT_BLANK_SINGLE_LINE`].
/// Other patterns already exclude control characters.
struct PlainText;

impl PlainText {
    fn operations(doc: &mut Document) -> impl Iterator<Item = &mut Operation> {
        doc.paths.paths.values_mut().flat_map(|item| {
            [
                item.get.as_mut(),
                item.post.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
                item.put.as_mut(),
            ]
            .into_iter()
            .flatten()
        })
    }

    fn is_string(schema_type: &utoipa::openapi::schema::SchemaType) -> bool {
        use utoipa::openapi::schema::SchemaType;
        match schema_type {
            SchemaType::Type(t) => *t == Type::String,
            SchemaType::Array(types) => types.contains(&Type::String),
            SchemaType::AnyValue => false,
        }
    }

    /// Sets the patterns of `schema` (the value of member `name`), collecting the components
    /// it refers to.
    fn declare(schema: &mut RefOr<Schema>, name: Option<&str>, refs: &mut Vec<String>) {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayItems};
        match schema {
            RefOr::Ref(r) => {
                if let Some(component) = r.ref_location.strip_prefix("#/components/schemas/") {
                    refs.push(component.to_owned());
                }
            }
            RefOr::T(Schema::Object(object)) => {
                if Self::is_string(&object.schema_type)
                    && object.format.is_none()
                    && object.enum_values.is_none()
                {
                    let multi_line = name.is_some_and(plain_text::is_multi_line);
                    match object.pattern.as_deref() {
                        None if multi_line => object.pattern = Some(plain_text::MULTI_LINE.into()),
                        None => object.pattern = Some(plain_text::SINGLE_LINE.into()),
                        Some(NOT_BLANK) => {
                            object.pattern = Some(plain_text::NOT_BLANK_SINGLE_LINE.into());
                        }
                        Some(_) => {}
                    }
                }
                for (member, value) in &mut object.properties {
                    Self::declare(value, Some(member), refs);
                }
                if let Some(additional) = object.additional_properties.as_deref_mut()
                    && let AdditionalProperties::RefOr(value) = additional
                {
                    Self::declare(value, None, refs);
                }
            }
            RefOr::T(Schema::Array(array)) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    Self::declare(items, name, refs);
                }
            }
            RefOr::T(Schema::OneOf(one_of)) => {
                for item in &mut one_of.items {
                    Self::declare(item, name, refs);
                }
            }
            RefOr::T(Schema::AllOf(all_of)) => {
                for item in &mut all_of.items {
                    Self::declare(item, name, refs);
                }
            }
            RefOr::T(Schema::AnyOf(any_of)) => {
                for item in &mut any_of.items {
                    Self::declare(item, name, refs);
                }
            }
            RefOr::T(_) => {}
        }
    }
}

impl Modify for PlainText {
    fn modify(&self, doc: &mut Document) {
        let mut refs = Vec::new();
        for operation in Self::operations(doc) {
            if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content
                        && let Some(schema) = content.schema.as_mut()
                    {
                        Self::declare(schema, None, &mut refs);
                    }
                }
            }
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && parameter.parameter_in == ParameterIn::Query
                    && let Some(schema) = parameter.schema.as_mut()
                {
                    let name = parameter.name.clone();
                    Self::declare(schema, Some(&name), &mut refs);
                }
            }
        }
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let mut done = std::collections::BTreeSet::new();
        while let Some(name) = refs.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = components.schemas.get_mut(&name) {
                Self::declare(schema, None, &mut refs);
            }
        }
    }
}
