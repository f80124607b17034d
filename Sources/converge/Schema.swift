import ArgumentParser
import ConvergeCore
import ConvergeManifests

extension ResourceKind: ExpressibleByArgument {
    public init?(argument: String) {
        guard let kind = ResourceKind.allCases.first(where: { $0.rawValue.lowercased() == argument.lowercased() })
        else { return nil }
        self = kind
    }

    public static var allValueStrings: [String] { allCases.map { $0.rawValue.lowercased() } }
}

/// `converge schema <kind>`: the JSON Schema of a kind, as committed in `manifests/schemas/`, or of a cloud
/// resource's params (`converge schema aws-sqs-queue`), which a cloud bundle's instances are checked against.
struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the JSON Schema of a manifest kind, or of a cloud resource's params.")

    @Argument(
        help: """
            The kind (\(ResourceKind.allValueStrings.joined(separator: ", "))) or a cloud resource \
            (\(CloudResources.kinds.keys.sorted().joined(separator: ", "))).
            """)
    var kind: String

    func validate() throws {
        guard ResourceKind(argument: kind) == nil, CloudResources.kinds[kind] == nil else { return }
        let names = ResourceKind.allValueStrings + CloudResources.kinds.keys.sorted()
        throw ValidationError(
            "unknown kind or cloud resource \"\(kind)\", expected one of \(names.joined(separator: ", "))"
                + didYouMean(kind, among: names))
    }

    func run() {
        if let resourceKind = ResourceKind(argument: kind) {
            print(KindShapes.jsonSchema(resourceKind).prettyJSON)
        } else if let resource = CloudResources.kinds[kind] {
            print(Self.paramsSchema(of: resource).prettyJSON)
        }
    }

    /// The params schema of a cloud resource as a JSON Schema document, titled, with what its outputs hold.
    static func paramsSchema(of resource: CloudResources.Kind) -> Value {
        var schema = resource.paramsSchema.objectValue ?? [:]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = .string("converge \(resource.resource) params")
        schema["description"] = .string(
            "\(resource.description) Its outputs: \(resource.outputs.joined(separator: ", ")).")
        return .object(schema)
    }
}
