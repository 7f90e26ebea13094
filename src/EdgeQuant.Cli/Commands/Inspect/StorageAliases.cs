using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Commands.Inspect;

/// <summary>Finds tensors whose stored bytes are the very same memory as an earlier tensor's (tied embeddings).</summary>
public static class StorageAliases
{
    /// <returns>For each tensor, the index of the first earlier tensor with identical storage, or null.</returns>
    public static int?[] Find(IReadOnlyList<ModelTensor> tensors)
    {
        var result = new int?[tensors.Count];
        // Same address and length is only possible between tensors of equal byte length, so compare within those
        // groups; refs are compared, not addresses, so a moving GC cannot fool the check.
        foreach (var group in Enumerable.Range(0, tensors.Count).GroupBy(i => tensors[i].Storage.Bytes.Length))
        {
            var members = group.ToList();
            for (var j = 1; j < members.Count; j++)
            {
                var b = tensors[members[j]].Storage.Bytes;
                if (b.IsEmpty) continue;
                for (var k = 0; k < j; k++)
                {
                    if (result[members[k]] is not null) continue;
                    var a = tensors[members[k]].Storage.Bytes;
                    if (Unsafe.AreSame(ref MemoryMarshal.GetReference(a), ref MemoryMarshal.GetReference(b)))
                    {
                        result[members[j]] = members[k];
                        break;
                    }
                }
            }
        }
        return result;
    }
}
