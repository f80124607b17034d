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

/// `converge schema <kind>`: the JSON Schema of a kind, as committed in `manifests/schemas/`.
struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the JSON Schema of a manifest kind.")

    @Argument(help: "The kind: \(ResourceKind.allValueStrings.joined(separator: ", ")).")
    var kind: ResourceKind

    func run() {
        print(KindShapes.jsonSchema(kind).prettyJSON)
    }
}

/// `converge version`.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")

    func run() {
        print("converge \(Converge.version)")
    }
}
