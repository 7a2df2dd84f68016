/// The KV cells in use, counted as llama.cpp's unified cache holds them: an evaluated
/// token takes a cell, a copy (fork, lent prefix, kept prompt) adds a reference to the
/// same cells, and a cell is free again once no sequence refers to it. llama.h does not say
/// how many cells are free; the scheduler needs to know before it decodes, so that a
/// caller whose tokens do not fit waits instead of failing.
struct CellLedger {
    /// References per cell handle; 0 for a handle on the free list.
    private var references: [Int32] = []
    private var freeHandles: [Int32] = []
    private(set) var used = 0

    /// Handles for `count` newly evaluated tokens, one reference each.
    mutating func take(_ count: Int) -> [Int32] {
        (0..<count).map { _ in
            used += 1
            if let handle = freeHandles.popLast() {
                references[Int(handle)] = 1
                return handle
            }
            references.append(1)
            return Int32(references.count - 1)
        }
    }

    /// Another sequence refers to these cells too.
    mutating func retain<C: Collection>(_ cells: C) where C.Element == Int32 {
        for cell in cells { references[Int(cell)] += 1 }
    }

    /// A sequence no longer refers to these cells; those nobody refers to are free.
    mutating func release<C: Collection>(_ cells: C) where C.Element == Int32 {
        for cell in cells {
            references[Int(cell)] -= 1
            if references[Int(cell)] == 0 {
                used -= 1
                freeHandles.append(cell)
            }
        }
    }
}
