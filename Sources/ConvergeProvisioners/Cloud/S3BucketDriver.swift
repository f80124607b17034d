import ConvergeCore
import Crypto
import Foundation

/// The driver of `CloudResources.s3Bucket`: one bucket with its versioning and tags, through S3's REST API with
/// path-style URLs (`<endpoint>/<bucket>`).
///
/// A provision creates the bucket when it is missing, then writes versioning and tags only where they differ from
/// what S3 reports, so a second run of the same params reads and writes nothing. Versioning that was never enabled
/// stays untouched while the params say `false`; once enabled, `false` suspends it (S3 cannot turn it off). A
/// decommission empties the bucket of every object version and delete marker first, as S3 deletes only empty buckets.
public struct S3BucketDriver: CloudResourceDriver {
    public init() {}

    public var kind: CloudResources.Kind { CloudResources.s3Bucket }

    /// What the params ask of the bucket.
    struct Desired: Equatable {
        var name: String
        var versioning: Bool
        var tags: [String: String]

        init(name: String, versioning: Bool, tags: [String: String]) {
            self.name = name
            self.versioning = versioning
            self.tags = tags
        }

        /// The params' bucket: `name`, else the instance's id.
        init(_ context: CloudContext, kind: CloudResources.Kind) throws {
            self.init(
                name: try kind.string("name", in: context.params) ?? context.instance,
                versioning: try kind.boolean("versioning", in: context.params), tags: try kind.tags(in: context.params))
        }

        /// Versioning and tags as a plan compares them.
        var value: Value {
            ["versioning": .bool(versioning), "tags": .object(tags.mapValues(Value.string))]
        }
    }

    /// What S3 reports of an existing bucket.
    struct Observed: Equatable {
        /// `Enabled` or `Suspended`; nil for a bucket that never had versioning.
        var versioning: String?
        var tags: [String: String]

        /// Versioning and tags in the params' terms: suspended versioning is `false`.
        var value: Value {
            ["versioning": .bool(versioning == "Enabled"), "tags": .object(tags.mapValues(Value.string))]
        }
    }

    /// One write that converges an existing bucket.
    enum Write: Equatable {
        /// `PUT ?versioning` with this status.
        case versioning(String)
        case putTags([String: String])
        case deleteTags
    }

    /// The writes that bring `observed` to `desired`: none when they agree.
    static func writes(from observed: Observed, to desired: Desired) -> [Write] {
        var writes: [Write] = []
        if desired.versioning, observed.versioning != "Enabled" {
            writes.append(.versioning("Enabled"))
        } else if !desired.versioning, observed.versioning == "Enabled" {
            writes.append(.versioning("Suspended"))
        }
        if observed.tags != desired.tags {
            writes.append(desired.tags.isEmpty ? .deleteTags : .putTags(desired.tags))
        }
        return writes
    }

    /// Why `name` cannot be a bucket's name, or nil when it can: S3's rules that hold in every region.
    static func invalidity(ofName name: String) -> String? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        let edges = Set("abcdefghijklmnopqrstuvwxyz0123456789")
        guard (3...63).contains(name.count), name.allSatisfy(allowed.contains), let first = name.first,
            let last = name.last, edges.contains(first), edges.contains(last)
        else {
            return "expected 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter "
                + "or a digit"
        }
        if name.contains("..") { return "expected no two dots in a row" }
        return nil
    }

    public func provision(_ context: CloudContext) async throws -> Value {
        let desired = try Desired(context, kind: kind)
        let bucket = try S3Bucket(name: desired.name, client: context.client)
        var writes: [Write]
        if try await bucket.exists() {
            writes = Self.writes(from: try await bucket.observe(), to: desired)
        } else {
            try await bucket.create()
            await context.log("created bucket \(bucket.name) in \(context.client.region)")
            writes = Self.writes(from: Observed(versioning: nil, tags: [:]), to: desired)
        }
        for write in writes {
            switch write {
            case .versioning(let status):
                try await bucket.putVersioning(status)
                await context.log("set versioning of bucket \(bucket.name) to \(status)")
            case .putTags(let tags):
                try await bucket.putTags(tags)
                await context.log(
                    "set tags of bucket \(bucket.name) to "
                        + tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
            case .deleteTags:
                try await bucket.deleteTags()
                await context.log("removed the tags of bucket \(bucket.name)")
            }
        }
        if writes.isEmpty { await context.log("bucket \(bucket.name) is up to date: nothing changed") }
        return [
            "name": .string(bucket.name),
            "arn": .string(context.client.arn(service: kind.service, account: nil, resource: bucket.name)),
            "endpoint": .string(bucket.url),
        ]
    }

    public func plan(_ context: CloudContext) async throws -> [ValueChange] {
        let desired = try Desired(context, kind: kind)
        let bucket = try S3Bucket(name: desired.name, client: context.client)
        guard try await bucket.exists() else { return [ValueChange(path: "", before: nil, after: context.params)] }
        return try await bucket.observe().value.changes(to: desired.value)
    }

    public func decommission(_ context: CloudContext) async throws {
        let name = try Desired(context, kind: kind).name
        guard Self.invalidity(ofName: name) == nil else {
            await context.log("no bucket can be named \(name): nothing to delete")
            return
        }
        let bucket = try S3Bucket(name: name, client: context.client)
        do {
            var deleted = 0
            while true {
                let versions = try await bucket.listVersions()
                guard !versions.isEmpty else { break }
                try await bucket.deleteVersions(versions)
                deleted += versions.count
            }
            if deleted > 0 { await context.log("deleted \(deleted) object version(s) of bucket \(name)") }
            try await bucket.delete()
            await context.log("deleted bucket \(name)")
        } catch let error as AWSError where error.code == "NoSuchBucket" {
            await context.log("bucket \(name) does not exist: nothing to delete")
        }
    }
}

/// The S3 calls of one bucket, each signed for `s3` (`AWSClient` adds the payload's SHA-256) and, with a body, with
/// its `Content-MD5` (which S3 requires of `PutBucketTagging` and `DeleteObjects`).
struct S3Bucket {
    /// The most keys one `DeleteObjects` call takes, and one `ListObjectVersions` page gives.
    static let batchSize = 1000
    static let namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

    let name: String
    let client: AWSClient

    /// The bucket `name`, refused with a `CloudError` when S3 would refuse the name.
    init(name: String, client: AWSClient) throws {
        if let reason = S3BucketDriver.invalidity(ofName: name) {
            throw CloudError("the bucket name \"\(name)\" is not valid: \(reason)")
        }
        self.name = name
        self.client = client
    }

    /// The bucket's URL, path-style.
    var url: String { "\(client.baseURL(of: "s3"))/\(name)" }

    /// Whether the bucket exists (`HeadBucket`).
    ///
    /// A HEAD answer has no body to name its error: for one other than 404, a `GetBucketVersioning` of the same bucket
    /// is asked, whose error answer names the code and message, and that error is thrown.
    func exists() async throws -> Bool {
        do {
            _ = try await send("HEAD")
            return true
        } catch let error as AWSError where error.status == 404 {
            return false
        } catch let error as AWSError where error.code == "HTTP\(error.status)" {
            _ = try await send("GET", query: "versioning")
            throw error
        }
    }

    /// Creates the bucket in the client's region (`CreateBucket`); one this account already owns is success.
    func create() async throws {
        var body: [UInt8]?
        if client.region != "us-east-1" {
            body = Array(
                """
                <CreateBucketConfiguration xmlns="\(Self.namespace)"><LocationConstraint>\
                \(XMLText.escaped(client.region))</LocationConstraint></CreateBucketConfiguration>
                """.utf8)
        }
        do {
            _ = try await send("PUT", body: body)
        } catch let error as AWSError where error.code == "BucketAlreadyOwnedByYou" {
            return
        }
    }

    /// The bucket's versioning status and tags (`GetBucketVersioning`, `GetBucketTagging`).
    func observe() async throws -> S3BucketDriver.Observed {
        let versioning = try await send("GET", query: "versioning")
        return S3BucketDriver.Observed(
            versioning: XMLText.first("Status", in: String(decoding: versioning.body, as: UTF8.self)),
            tags: try await tags())
    }

    /// The bucket's tags (`GetBucketTagging`); a bucket without any answers `NoSuchTagSet`.
    func tags() async throws -> [String: String] {
        let response: HTTPResponse
        do {
            response = try await send("GET", query: "tagging")
        } catch let error as AWSError where error.code == "NoSuchTagSet" {
            return [:]
        }
        var tags: [String: String] = [:]
        for tag in Self.elements("Tag", in: String(decoding: response.body, as: UTF8.self)) {
            guard let key = XMLText.first("Key", in: tag), let value = XMLText.first("Value", in: tag) else { continue }
            tags[key] = value
        }
        return tags
    }

    /// Sets the versioning status, `Enabled` or `Suspended` (`PutBucketVersioning`).
    func putVersioning(_ status: String) async throws {
        _ = try await send(
            "PUT", query: "versioning",
            body: Array(
                """
                <VersioningConfiguration xmlns="\(Self.namespace)"><Status>\(status)</Status></VersioningConfiguration>
                """.utf8))
    }

    /// Replaces the bucket's tags (`PutBucketTagging`).
    func putTags(_ tags: [String: String]) async throws {
        let set = tags.sorted { $0.key < $1.key }.map {
            "<Tag><Key>\(XMLText.escaped($0.key))</Key><Value>\(XMLText.escaped($0.value))</Value></Tag>"
        }
        _ = try await send(
            "PUT", query: "tagging",
            body: Array(#"<Tagging xmlns="\#(Self.namespace)"><TagSet>\#(set.joined())</TagSet></Tagging>"#.utf8))
    }

    /// Removes every tag of the bucket (`DeleteBucketTagging`).
    func deleteTags() async throws {
        _ = try await send("DELETE", query: "tagging")
    }

    /// One object version or delete marker: its key and version id (`null` for an object written before
    /// versioning).
    struct ObjectVersion: Equatable {
        var key: String
        var versionID: String
    }

    /// The first versions and delete markers of the bucket, up to `batchSize` (`ListObjectVersions`).
    ///
    /// No markers are needed to page on: a decommission deletes what it listed and lists again until nothing is left.
    func listVersions() async throws -> [ObjectVersion] {
        let response = try await send("GET", query: "versions")
        let text = String(decoding: response.body, as: UTF8.self)
        return (Self.elements("Version", in: text) + Self.elements("DeleteMarker", in: text)).compactMap { entry in
            guard let key = XMLText.first("Key", in: entry) else { return nil }
            return ObjectVersion(key: key, versionID: XMLText.first("VersionId", in: entry) ?? "null")
        }
    }

    /// Deletes these versions (`DeleteObjects`, quiet), up to `batchSize` a call; a version that S3 could not delete
    /// is thrown as an `AWSError` with the code S3 gave it.
    func deleteVersions(_ versions: [ObjectVersion]) async throws {
        for start in stride(from: 0, to: versions.count, by: Self.batchSize) {
            let objects = versions[start..<min(start + Self.batchSize, versions.count)].map {
                "<Object><Key>\(XMLText.escaped($0.key))</Key>"
                    + "<VersionId>\(XMLText.escaped($0.versionID))</VersionId></Object>"
            }
            let body = #"<Delete xmlns="\#(Self.namespace)"><Quiet>true</Quiet>\#(objects.joined())</Delete>"#
            let response = try await send("POST", query: "delete", body: Array(body.utf8))
            let text = String(decoding: response.body, as: UTF8.self)
            if let failure = Self.elements("Error", in: text).first {
                throw AWSError(
                    status: response.status, code: XMLText.first("Code", in: failure) ?? "DeleteObjectsFailed",
                    message: "could not delete \(XMLText.first("Key", in: failure) ?? "an object") of bucket \(name): "
                        + (XMLText.first("Message", in: failure) ?? ""))
            }
        }
    }

    /// Deletes the (empty) bucket (`DeleteBucket`).
    func delete() async throws {
        _ = try await send("DELETE")
    }

    /// The content of every `<name>` element of `xml` as XML, entities kept, to read the elements inside with
    /// `XMLText` (whose `all` decodes entities once: escaping every `&` first makes that decoding give the raw text).
    static func elements(_ name: String, in xml: String) -> [String] {
        XMLText.all(name, in: xml.replacingOccurrences(of: "&", with: "&amp;"))
    }

    /// One call on the bucket: `query` names the subresource (`versioning`, `tagging`, …), sent as `?name=`.
    ///
    /// An error answer is thrown as an `AWSError` whose message names the bucket.
    func send(_ method: String, query: String? = nil, body: [UInt8]? = nil) async throws -> HTTPResponse {
        do {
            return try await client.send(
                service: "s3", method: method, path: "/\(name)", query: query.map { [($0, "")] } ?? [],
                headers: Self.headers(for: body), body: body)
        } catch var error as AWSError {
            if !error.message.contains(name) {
                error.message = error.message.isEmpty ? "bucket \(name)" : "\(error.message) (bucket \(name))"
            }
            throw error
        }
    }

    /// The headers of a call with `body`: with a body its MD5 in base64 and its type (`AWSClient` adds its SHA-256).
    static func headers(for body: [UInt8]?) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if let body, !body.isEmpty {
            headers.append(("Content-Type", "application/xml"))
            headers.append(("Content-MD5", Data(Insecure.MD5.hash(data: body)).base64EncodedString()))
        }
        return headers
    }
}
