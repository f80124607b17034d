// The types, the server protocol (`APIProtocol`) and the `Client` of the HTTP API are generated at build time from
// `openapi.yaml` beside this file by swift-openapi-generator (`openapi-generator-config.yaml` says what).
