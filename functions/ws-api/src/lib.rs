//! The WebSocket API (spec §10.3). Connections are accepted as the original does; the handshake,
//! connection records and pushes arrive with the cohort-jobs issue.
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

pub async fn function_handler(event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let route = event.request_context.route_key.as_deref().unwrap_or("$default");
    tracing::info!(route, "websocket event");
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response
}
