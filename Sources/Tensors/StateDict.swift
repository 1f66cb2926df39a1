import Foundation
import Formats

// Module checkpoints: the parameter tree's dotted names (see `Module`) are the safetensors keys, so
// diffusers/transformers checkpoints load directly. Loading validates everything first and only then
// copies values into the existing parameter tensors, so a failed load leaves the module untouched.

/// Why a state dict does not fit a module. Lists every problem at once (the first few of each kind,
/// with counts) so a renamed or re-shaped checkpoint can be diagnosed in one go.
public struct StateDictError: Error, CustomStringConvertible {
    /// Where the values came from (a file path, or "state dict").
    public let source: String
    /// The key prefix that was stripped (empty for none).
    public let prefix: String
    /// Module parameters with no value in the source (only reported in strict mode).
    public let missing: [String]
    /// Source keys that name no parameter (only reported in strict mode).
    public let unexpected: [String]
    /// Keys present on both sides with different shapes: (key, module shape, source shape).
    public let misshaped: [(key: String, expected: [Int], found: [Int])]

    /// How many of each kind the description spells out.
    public static let listed = 5

    public var description: String {
        var parts: [String] = []
        func list(_ keys: [String]) -> String {
            let shown = keys.prefix(StateDictError.listed).map { "'\($0)'" }.joined(separator: ", ")
            return keys.count > StateDictError.listed ? "\(shown), … (\(keys.count - StateDictError.listed) more)" : shown
        }
        if !missing.isEmpty { parts.append("\(missing.count) missing key\(missing.count == 1 ? "" : "s"): \(list(missing))") }
        if !unexpected.isEmpty {
            parts.append("\(unexpected.count) unexpected key\(unexpected.count == 1 ? "" : "s"): \(list(unexpected))")
        }
        if !misshaped.isEmpty {
            let shown = misshaped.prefix(StateDictError.listed)
                .map { "'\($0.key)' (module \($0.expected), checkpoint \($0.found))" }.joined(separator: ", ")
            let more = misshaped.count > StateDictError.listed ? ", … (\(misshaped.count - StateDictError.listed) more)" : ""
            parts.append("\(misshaped.count) mis-shaped key\(misshaped.count == 1 ? "" : "s"): \(shown)\(more)")
        }
        let under = prefix.isEmpty ? "" : " (keys under '\(prefix).')"
        return "cannot load \(source)\(under) into the module: " + parts.joined(separator: "; ")
    }
}

extension Module {
    /// The parameters by dotted name, in declaration order. The tensors are the live parameters,
    /// not copies.
    public func stateDict() -> [(String, Tensor)] {
        namedParameters().map { ($0.name, $0.tensor) }
    }

    /// Writes the parameters to a safetensors file (atomically; see `writeSafetensors`).
    public func save(to path: String, dtype: SafetensorsDType = .f32, metadata: [String: String] = [:]) throws {
        try writeSafetensors(stateDict(), to: path, dtype: dtype, metadata: metadata)
    }

    /// Copies the values of `file`'s tensors into this module's parameters (converting to Float32).
    ///
    /// With a `prefix` (a trailing dot is optional), only keys starting with `prefix.` are considered, and the prefix is removed
    /// before matching (e.g. `prefix: "unet"` loads `unet.conv_in.weight` into `conv_in.weight`).
    /// Shapes must match exactly. In strict mode every parameter needs a value and every considered
    /// key must name a parameter. Throws `StateDictError` listing all problems, before changing
    /// anything; throws `SafetensorsError` if a tensor cannot be read.
    public func loadStateDict(from file: SafetensorsFile, prefix: String = "", strict: Bool = true) throws {
        let prefix = prefix.hasSuffix(".") ? String(prefix.dropLast()) : prefix
        var shapes: [String: [Int]] = [:]
        for name in file.names {
            guard let key = stripping(prefix, from: name), let info = file.info(name) else { continue }
            shapes[key] = info.shape
        }
        let targets = try plan(sourceShapes: shapes, source: file.path, prefix: prefix, strict: strict)
        var values: [(Tensor, Tensor)] = []
        for (key, parameter) in targets {
            values.append((parameter, try file.tensor(prefix.isEmpty ? key : "\(prefix).\(key)")))
        }
        for (parameter, value) in values { parameter.assign(value) }
    }

    /// Copies `tensors`' values into this module's parameters; same rules as the file variant.
    public func loadStateDict(_ tensors: [String: Tensor], prefix: String = "", strict: Bool = true) throws {
        let prefix = prefix.hasSuffix(".") ? String(prefix.dropLast()) : prefix
        var stripped: [String: Tensor] = [:]
        for (name, t) in tensors {
            if let key = stripping(prefix, from: name) { stripped[key] = t }
        }
        let targets = try plan(sourceShapes: stripped.mapValues(\.shape), source: "state dict", prefix: prefix, strict: strict)
        for (key, parameter) in targets { parameter.assign(stripped[key]!) }
    }

    private func stripping(_ prefix: String, from name: String) -> String? {
        if prefix.isEmpty { return name }
        guard name.hasPrefix(prefix + "."), name.count > prefix.count + 1 else { return nil }
        return String(name.dropFirst(prefix.count + 1))
    }

    /// Matches source keys to parameters; returns the (key, parameter) pairs to copy, or throws.
    private func plan(sourceShapes: [String: [Int]], source: String, prefix: String, strict: Bool) throws
        -> [(String, Tensor)] {
        let named = namedParameters()
        var missing: [String] = []
        var misshaped: [(key: String, expected: [Int], found: [Int])] = []
        var targets: [(String, Tensor)] = []
        var known = Set<String>()
        for (name, parameter) in named {
            known.insert(name)
            guard let shape = sourceShapes[name] else { missing.append(name); continue }
            if shape != parameter.shape { misshaped.append((name, parameter.shape, shape)); continue }
            targets.append((name, parameter))
        }
        let unexpected = sourceShapes.keys.filter { !known.contains($0) }.sorted()
        if !misshaped.isEmpty || (strict && (!missing.isEmpty || !unexpected.isEmpty)) {
            throw StateDictError(source: source, prefix: prefix, missing: strict ? missing : [],
                                 unexpected: strict ? unexpected : [], misshaped: misshaped)
        }
        return targets
    }
}
