namespace EdgeQuant.Core.Kernels;

/// <summary>Argument checks shared by the kernels. Sizes are checked in 64-bit so a product cannot wrap.</summary>
internal static class KernelGuard
{
    public static void Rows(int sourceLength, int destinationLength, int rows, int rowLength)
    {
        if (rows < 0) throw new ArgumentOutOfRangeException(nameof(rows), rows, "must not be negative");
        long need = (long)rows * rowLength;
        if (sourceLength < need) throw new ArgumentException($"source holds {sourceLength} elements, {rows}x{rowLength} needed");
        if (destinationLength < need) throw new ArgumentException($"destination holds {destinationLength} elements, {rows}x{rowLength} needed");
    }

    public static void Matrix(int length, int rows, int columns, string name)
    {
        if (rows < 0) throw new ArgumentOutOfRangeException(name, rows, "row count must not be negative");
        if (columns < 0) throw new ArgumentOutOfRangeException(name, columns, "column count must not be negative");
        long need = (long)rows * columns;
        if (length < need) throw new ArgumentException($"{name} holds {length} elements, {rows}x{columns} = {need} needed", name);
    }
}
