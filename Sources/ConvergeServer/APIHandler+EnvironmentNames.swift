import ConvergeCore
import ConvergeStore

extension APIHandler {
    /// The environment a list filter names: its id (`ecomm-production`), or its name (`production`) when exactly
    /// one project has an environment of that name. An unknown name is `not_found`, an ambiguous one
    /// `invalid_argument` listing the candidates; nil stays nil (no filter).
    ///
    /// An id is one primary-key read; a short name costs one more per project, and only when it is not an id.
    func environmentID(_ text: String?) async throws -> String? {
        guard let text else { return nil }
        if try await environmentExists(text) { return text }
        var candidates: [String] = []
        if Identifier.problem(withSegment: text) == nil {
            var cursor: String?
            repeat {
                let projects = try await store.resources(of: .project, labels: nil, after: cursor, limit: 500)
                for project in projects.items {
                    let id = Identifier.join(project.resource.id, text)
                    if try await environmentExists(id) { candidates.append(id) }
                }
                cursor = projects.nextCursor
            } while cursor != nil
        }
        switch candidates.count {
        case 0:
            throw ConvergeError(.notFound, "environment \(text) not found", details: ["field": "environment"])
        case 1:
            return candidates[0]
        default:
            throw ConvergeError(
                .invalidArgument,
                "environment \(text) is ambiguous: \(candidates.joined(separator: ", ")); give its id",
                details: ["field": "environment"])
        }
    }

    private func environmentExists(_ id: String) async throws -> Bool {
        do {
            _ = try await store.resource(ResourceKey(.environment, id))
            return true
        } catch let error as ConvergeError where error.code == .notFound {
            return false
        }
    }
}
