import ArgumentParser
import ConvergeCore
import ConvergeManifests
import Foundation
import Testing

@testable import converge

/// Every operation of the API has a CLI command: the document's operations against the command tree.
@Suite struct CommandTreeTests {
    /// The command that drives each operation, as words after `converge`.
    static let commands: [String: [[String]]] = [
        "getHealth": [["status"]], "getVersion": [["version"]], "getReadiness": [["status"]], "requestSync": [["sync"]],
        "getPrincipal": [["whoami"]], "listResources": [["get"]], "getResource": [["get"], ["describe"]],
        "applyResource": [["apply"], ["diff"]], "deleteResource": [["delete"]], "listInstances": [["get"]],
        "getInstance": [["get"], ["describe"]], "createDeployment": [["deploy"], ["propose"], ["plan"]],
        "rollbackInstance": [["rollback"]], "listDeployments": [["get"]], "getDeployment": [["get"], ["describe"]],
        "approveDeployment": [["approve"]], "rejectDeployment": [["reject"]], "abortDeployment": [["abort"]],
        "planDeployment": [["plan"]], "listDeploymentEvents": [["logs"]], "compareDeployments": [["compare"]],
        "compareEnvironments": [["compare"]],
        "watchDeployments": [["watch"]], "listAudit": [["audit"]], "listInstanceSecrets": [["secret", "list"]],
        "setInstanceSecret": [["secret", "set"]], "forkEnvironment": [["env", "fork"]],
        "deleteEnvironment": [["env", "delete"]], "orphanInstance": [["instance", "orphan"]],
        "setEnvironmentDefault": [["env", "default"]],
        "deployEnvironment": [["env", "deploy"]], "decommissionEnvironment": [["env", "decommission"]],
        "listRollouts": [["env", "rollouts"]], "getRollout": [["env", "rollouts"]],
        "applyPreview": [["preview"], ["preview", "up"]], "getPreview": [["preview", "show"]],
        "destroyPreview": [["preview", "destroy"]],
        "deleteInstanceSecret": [["secret", "rm"]],
        "copyInstance": [["instance", "copy"]],
    ]
    /// Operations that are not for people: Prometheus scrapes the metrics, provisioners report through callbacks,
    /// git hosts push, probes send HEAD.
    static let notForPeople: Set<String> = [
        "getMetrics", "reportDeploymentEvent", "receiveGitPush", "headHealth", "headReadiness", "headMetrics",
    ]

    static var operationIDs: Set<String> {
        let url = ConvergeBinary.repository.appendingPathComponent("Sources/ConvergeAPI/openapi.yaml")
        let document = try! YAMLParser().parse(try! String(contentsOf: url, encoding: .utf8), file: "openapi.yaml")[0]
        var ids: Set<String> = []
        for (_, item) in document.value["paths"]?.objectValue ?? [:] {
            for (method, operation) in item.objectValue ?? [:] where method != "parameters" {
                if let id = operation["operationId"]?.stringValue { ids.insert(id) }
            }
        }
        return ids
    }

    /// Whether `words` name a command of the tree.
    static func exists(_ words: [String]) -> Bool {
        var command: any ParsableCommand.Type = Converge.self
        for word in words {
            guard let next = command.configuration.subcommands.first(where: { $0._commandName == word }) else {
                return false
            }
            command = next
        }
        return true
    }

    @Test func everyOperation_hasACommand_andEveryMappedCommandExists() {
        let ids = Self.operationIDs
        #expect(ids.subtracting(Self.notForPeople) == Set(Self.commands.keys))
        for (operation, commands) in Self.commands {
            for words in commands {
                #expect(Self.exists(words), "\(operation): converge \(words.joined(separator: " ")) does not exist")
            }
        }
    }
}
