import ConvergeCore
import Crypto
import Foundation

/// AWS credentials: an access key, and a session token for temporary ones.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// An error answer of an AWS API: its HTTP status, its code (`AccessDenied`, `QueueDoesNotExist`,
/// `ResourceNotFoundException`) and its message.
public struct AWSError: Error, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String {
        "AWS \(code): \(message.isEmpty ? "(no message)" : message) (HTTP \(status))"
    }

    /// Whether AWS asks to slow down: the call is retried with backoff.
    public var isThrottling: Bool {
        status == 429 || status >= 500
            || [
                "Throttling", "ThrottlingException", "ThrottledException", "SlowDown", "RequestLimitExceeded",
                "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestThrottled",
                "RequestThrottledException",
            ].contains(code)
    }

    /// The error an answer states: the code and message of an XML body (`<Code>`, `<Message>`) or a JSON one
    /// (`__type`, `code`, `message` or `Message`), or its status when it states none.
    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        let text = String(decoding: body, as: UTF8.self)
        var code = headers.first { $0.name.lowercased() == "x-amzn-errortype" }?.value
        var message: String?
        if let json = try? Value(json: text), json.objectValue != nil {
            code = code ?? json["__type"]?.stringValue ?? json["code"]?.stringValue ?? json["Code"]?.stringValue
            message = json["message"]?.stringValue ?? json["Message"]?.stringValue
        } else {
            code = code ?? XMLText.first("Code", in: text)
            message = XMLText.first("Message", in: text)
        }
        // `com.amazonaws.sqs#QueueDoesNotExist` and `QueueDoesNotExist:http://…` name the same code.
        let bare = code.map { String($0.split(separator: "#").last ?? "").split(separator: ":").first.map(String.init) }
        self.init(
            status: status, code: (bare ?? nil).flatMap { $0.isEmpty ? nil : $0 } ?? "HTTP\(status)",
            message: message ?? (text.count <= 200 ? text : String(text.prefix(200)) + "…"))
    }
}

/// Calls AWS APIs through the project's libcurl client, signed by libcurl itself (`CURLOPT_AWS_SIGV4`).
///
/// Every call goes to the service's regional endpoint, or to the provisioner's own endpoint (an emulator, a private
/// endpoint) when the daemon's URL allow-list allows it. Throttling (`Throttling`, `SlowDown`, 429, 5xx) and transport
/// errors are retried with exponential backoff within the deployment's deadline; any other error answer is thrown
/// as an `AWSError` naming the AWS code and message.
public struct AWSClient: Sendable {
    /// Daemon-wide settings of every cloud call.
    public struct Settings: Sendable {
        public var connectTimeout: Duration = .seconds(5)
        /// How long one call may take.
        public var callTimeout: Duration = .seconds(30)
        public var maxAttempts = 5
        public var initialBackoff: Duration = .milliseconds(200)
        public var maxBackoff: Duration = .seconds(5)
        public var maxResponseBytes = 4 << 20
        /// URL prefixes a provisioner's own `endpoint` may be at (the webhooks' allow-list); a URL matching none is
        /// refused. The provider's regional endpoints are always allowed.
        public var allowedURLPrefixes: [String] = []

        public init() {}
    }

    public let region: String
    public let endpoint: String?
    let credentials: AWSCredentials
    let settings: Settings
    /// When the deployment's time is up: no call or retry starts after it.
    let deadline: ContinuousClock.Instant?
    let http: CurlHTTPClient

    public init(
        region: String, endpoint: String?, credentials: AWSCredentials, settings: Settings = Settings(),
        deadline: ContinuousClock.Instant? = nil, http: CurlHTTPClient = CurlHTTPClient()
    ) {
        self.region = region
        self.endpoint = endpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.credentials = credentials
        self.settings = settings
        self.deadline = deadline
        self.http = http
    }

    /// The base URL of `service`: the endpoint when one is set, else the service's regional one.
    public func baseURL(of service: String) -> String {
        endpoint ?? "https://\(service).\(region).amazonaws.com"
    }

    /// The ARN of a resource of `service` in this region (`arn:aws:sqs:eu-west-1:123456789012:jobs`); S3 buckets have
    /// neither region nor account in theirs.
    public func arn(service: String, account: String?, resource: String) -> String {
        service == "s3" ? "arn:aws:s3:::\(resource)" : "arn:aws:\(service):\(region):\(account ?? ""):\(resource)"
    }

    /// Sends one signed call to `service` and returns its 2xx answer; an error answer is thrown as an `AWSError`,
    /// after the retries throttling gets. `path` starts with `/` and is already percent-encoded; `query` is encoded
    /// here.
    public func send(
        service: String, method: String, path: String = "/", query: [(String, String)] = [],
        headers: [(name: String, value: String)] = [], body: [UInt8]? = nil
    ) async throws -> HTTPResponse {
        var url = baseURL(of: service) + path
        if !query.isEmpty {
            // Sorted by name, as SigV4's canonical query string is: libcurl 7.88 signs them in the order given.
            url +=
                "?"
                + query.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }
                .joined(separator: "&")
        }
        guard endpoint == nil || settings.allowedURLPrefixes.contains(where: { url.hasPrefix($0) }) else {
            throw CloudError("the AWS endpoint \(baseURL(of: service)) is not allowed by the daemon's configuration")
        }
        var sent = headers
        if service == "s3" {
            // S3 wants the payload's SHA-256 on every SigV4 call, signed; libcurl 7.88 leaves it out.
            sent.append(
                ("x-amz-content-sha256", SHA256.hash(data: body ?? []).map { String(format: "%02x", $0) }.joined()))
        }
        if let token = credentials.sessionToken { sent.append(("X-Amz-Security-Token", token)) }
        sent.append(("User-Agent", "converge"))
        let signing = AWSSigning(
            region: region, service: service, accessKeyID: credentials.accessKeyID,
            secretAccessKey: credentials.secretAccessKey)
        var backoff = settings.initialBackoff
        var attempt = 0
        while true {
            try Task.checkCancellation()
            attempt += 1
            var timeout = settings.callTimeout
            if let deadline {
                let left = deadline - .now
                guard left > .zero else { throw CloudError("the provisioner's timeout passed") }
                timeout = min(timeout, left)
            }
            let request = HTTPRequest(
                method: method, url: url, headers: sent, body: body, connectTimeout: settings.connectTimeout,
                timeout: timeout, maxResponseBytes: settings.maxResponseBytes, aws: signing)
            let failure: any Error
            do {
                let response = try await http.send(request)
                if (200..<300).contains(response.status) { return response }
                let error = AWSError(status: response.status, headers: response.headers, body: response.body)
                guard error.isThrottling else { throw error }
                failure = error
            } catch let error as HTTPTransportError {
                if case .cancelled = error { throw CancellationError() }
                failure = CloudError("\(method) \(url): \(error)")
            }
            guard attempt < settings.maxAttempts, deadline.map({ .now + backoff < $0 }) ?? true else { throw failure }
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, settings.maxBackoff)
        }
    }

    /// Calls an action of an AWS JSON protocol API (SQS, DynamoDB): a POST of `input` with `X-Amz-Target:
    /// <target>`, and the answer's JSON object.
    public func json(service: String, target: String, input: Value, version: String = "1.0") async throws -> Value {
        let response = try await send(
            service: service, method: "POST",
            headers: [("Content-Type", "application/x-amz-json-\(version)"), ("X-Amz-Target", target)],
            body: Array(input.canonicalJSON.utf8))
        guard !response.body.isEmpty else { return [:] }
        do {
            return try Value(json: String(decoding: response.body, as: UTF8.self))
        } catch {
            throw CloudError("\(target) answered with a body that is not JSON")
        }
    }

    /// `text` percent-encoded as SigV4 wants a query component (RFC 3986 unreserved characters kept).
    public static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(
            .init(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// A cloud call that failed without an AWS error answer: a refused endpoint, a transport error, the deadline.
public struct CloudError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// The little XML reading the AWS APIs' answers need: the text of elements by name.
public enum XMLText {
    /// The text of every `<name>…</name>` element of `xml`, in order, entities decoded; attributes allowed.
    public static func all(_ name: String, in xml: String) -> [String] {
        var values: [String] = []
        var rest = Substring(xml)
        while let open = rest.range(of: "<\(name)") {
            let after = rest[open.upperBound...]
            guard let first = after.first, ">/ ".contains(first), let end = after.firstIndex(of: ">") else {
                rest = after
                continue
            }
            let content = after[after.index(after: end)...]
            if end > after.startIndex, after[after.index(before: end)] == "/" {
                values.append("")
                rest = content
                continue
            }
            guard let close = content.range(of: "</\(name)>") else { break }
            values.append(decoded(String(content[..<close.lowerBound])))
            rest = content[close.upperBound...]
        }
        return values
    }

    /// The text of the first `<name>` element, or nil.
    public static func first(_ name: String, in xml: String) -> String? {
        all(name, in: xml).first
    }

    /// `text` with XML's entities escaped, for a request body.
    public static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&apos;")
    }

    static func decoded(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
