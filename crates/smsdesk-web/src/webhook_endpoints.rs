//! `/api/webhook-endpoints`: a team admin's delivery-webhook endpoints, their secrets (shown at
//! creation and rotation only), their deliveries and replays. Every rule is the domain's
//! ([`smsdesk_domain::services::ManageWebhooks`]); these handlers parse, call and map.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use smsdesk_domain::services::ManageWebhooks;
use smsdesk_domain::webhooks::{DeliveryId, EndpointId};

use crate::auth::Authenticated;
use crate::dto::{
    PageLinksDto, WebhookDeliveryDto, WebhookDeliveryPageDto, WebhookEndpointDto,
    WebhookEndpointListDto, WebhookEndpointRequestDto, WebhookEndpointWithSecretDto,
};
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::routes::{Query, endpoint, json_body, next_page_url};
use crate::state::WebState;

/// The deliveries listed per page when the client names no limit, and the most.
const DEFAULT_DELIVERIES: usize = 50;
const MAX_DELIVERIES: usize = 200;

/// Registers the endpoints' routes on `scope`.
pub(crate) fn register(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .service(
            web::resource("/api/webhook-endpoints")
                .route(web::get().to(list))
                .route(web::post().to(create))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::method_not_allowed_of(&[
                        Method::GET,
                        Method::POST,
                    ]))
                })),
        )
        .service(
            web::resource("/api/webhook-endpoints/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(update))
                .route(web::delete().to(delete))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::method_not_allowed_of(&[
                        Method::GET,
                        Method::PATCH,
                        Method::DELETE,
                    ]))
                })),
        )
        .service(endpoint(
            "/api/webhook-endpoints/{id}/rotate-secret",
            Method::POST,
            rotate_secret,
        ))
        .service(endpoint(
            "/api/webhook-endpoints/{id}/deliveries",
            Method::GET,
            deliveries,
        ))
        .service(endpoint(
            "/api/webhook-endpoints/{id}/deliveries/{delivery}/replay",
            Method::POST,
            replay,
        ))
}

fn endpoint_id(raw: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(raw).ok_or_else(|| {
        ApiError::invalid_parameter("id", "an endpoint id is we_ followed by a number")
    })
}

fn delivery_id(field: &str, raw: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(raw).ok_or_else(|| {
        ApiError::invalid_parameter(field, "a delivery id is wd_ followed by a number")
    })
}

fn secret_answer(
    status: actix_web::http::StatusCode,
    dto: WebhookEndpointWithSecretDto,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::LOCATION,
            format!("/api/webhook-endpoints/{}", dto.endpoint.id),
        ))
        .json(dto)
}

async fn create(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    // The role first: a member learns nothing about the body's validity.
    let admin = ManageWebhooks::authorize(&requester).map_err(ApiError::from)?;
    let body: WebhookEndpointRequestDto = json_body(&req, payload).await?;
    let created = state
        .webhooks()
        .create(admin, body.into())
        .await
        .map_err(ApiError::from)?;
    Ok(secret_answer(
        actix_web::http::StatusCode::CREATED,
        created.into(),
    ))
}

async fn list(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let admin = ManageWebhooks::authorize(&requester)?;
    let endpoints = state.webhooks().list(admin).await?;
    Ok(HttpResponse::Ok().json(WebhookEndpointListDto {
        endpoints: endpoints
            .into_iter()
            .map(WebhookEndpointDto::from)
            .collect(),
    }))
}

async fn get(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let admin = ManageWebhooks::authorize(&requester)?;
    let found = state.webhooks().get(admin, endpoint_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(WebhookEndpointDto::from(found)))
}

async fn update(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let admin = ManageWebhooks::authorize(&requester).map_err(ApiError::from)?;
    let id = endpoint_id(&path)?;
    let body: WebhookEndpointRequestDto = json_body(&req, payload).await?;
    let changed = state
        .webhooks()
        .update(admin, id, body.into())
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(WebhookEndpointDto::from(changed)))
}

async fn delete(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let admin = ManageWebhooks::authorize(&requester)?;
    state.webhooks().delete(admin, endpoint_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate_secret(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let admin = ManageWebhooks::authorize(&requester)?;
    let rotated = state
        .webhooks()
        .rotate_secret(admin, endpoint_id(&path)?)
        .await?;
    Ok(secret_answer(
        actix_web::http::StatusCode::OK,
        rotated.into(),
    ))
}

async fn deliveries(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::new(query.into_inner(), &["cursor", "limit"])?;
    let admin = ManageWebhooks::authorize(&requester)?;
    let id = endpoint_id(&path)?;
    let before = params
        .get("cursor")
        .map(|raw| delivery_id("cursor", raw))
        .transpose()?;
    let limit = params.limit(DEFAULT_DELIVERIES, MAX_DELIVERIES)?;
    let found = state
        .webhooks()
        .deliveries(admin, id, before, limit)
        .await?;
    let next_cursor = (found.len() == limit)
        .then(|| found.last().map(|last| last.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(WebhookDeliveryPageDto {
        links: PageLinksDto {
            next: next_cursor
                .as_deref()
                .map(|next| next_page_url(&req, &params, next)),
        },
        next_cursor,
        deliveries: found.into_iter().map(WebhookDeliveryDto::from).collect(),
    }))
}

async fn replay(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<(String, String)>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let admin = ManageWebhooks::authorize(&requester)?;
    let (endpoint, delivery) = path.into_inner();
    let replayed = state
        .webhooks()
        .replay(
            admin,
            endpoint_id(&endpoint)?,
            delivery_id("delivery", &delivery)?,
        )
        .await?;
    Ok(HttpResponse::Accepted().json(WebhookDeliveryDto::from(replayed)))
}
