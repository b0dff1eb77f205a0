// Draws the OpenAPI document named by #swagger-ui's data-spec-url. A file, not an inline
// script: the page's Content-Security-Policy runs scripts of this origin only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // The default sends the document to validator.swagger.io: nothing leaves this host.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();
