// smsdesk API reference (GET /docs): the service's own OpenAPI document rendered by the vendored
// Swagger UI (assets/vendor/swagger-ui, see its VERSION). Kept in a file of its own because the
// page's Content-Security-Policy allows no inline script.
'use strict';

window.addEventListener('DOMContentLoaded', () => {
  window.SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#reference',
    // Every operation listed (tags open, operations closed), each linkable by its URL fragment.
    docExpansion: 'list',
    deepLinking: true,
    // The public validator would be a third-party request the policy blocks anyway.
    validatorUrl: null,
    // "Try it out" keeps the API key given to "Authorize" in this tab's memory only.
    persistAuthorization: false,
    displayRequestDuration: true,
  });
});
