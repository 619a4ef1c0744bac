using System.Buffers.Binary;
using System.Text;

namespace GptJx.Checkpoints;

/// <summary>
/// Reads the <c>data.pkl</c> of a torch.save archive holding a state dict. It
/// is an interpreter for the few pickle opcodes and globals PyTorch writes,
/// and refuses everything else (see <see cref="TorchPickleGlobals"/>): a
/// pickle is a program, and a checkpoint downloaded from the internet must not
/// be able to run one.
/// </summary>
internal sealed class TorchUnpickler
{
    private readonly string _file;
    private readonly byte[] _data;
    private int _position;
    private readonly List<object> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object> _memo = [];

    private TorchUnpickler(string file, byte[] data)
    {
        _file = file;
        _data = data;
    }

    /// <summary>Unpickles a state dict: tensor names in order, each with its storage description.</summary>
    public static List<(string Name, TorchTensor Tensor)> ReadStateDict(string file, byte[] pickle)
    {
        var result = new TorchUnpickler(file, pickle).Run();
        if (result is not PickleDict dict)
            throw new CheckpointException(file, null, $"data.pkl holds a {Describe(result)}, not a state dict");
        var tensors = new List<(string, TorchTensor)>(dict.Items.Count);
        foreach (var (key, value) in dict.Items)
        {
            if (key is not string name)
                throw new CheckpointException(file, null, $"state dict key {Describe(key)} is not a string");
            if (value is not TorchTensor tensor)
                throw new CheckpointException(file, name, $"state dict value is a {Describe(value)}, not a tensor");
            tensors.Add((name, tensor));
        }
        return tensors;
    }

    private object Run()
    {
        while (true)
        {
            int at = _position;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: ReadByte(); break;                        // PROTO n: any version; the opcodes decide
                case 0x95: Read(8); break;                           // FRAME: a length hint only
                case (byte)'.':                                      // STOP
                    if (_stack.Count != 1) throw Bad($"pickle ends with {_stack.Count} values on the stack", at);
                    return _stack[0];
                case (byte)'(': _marks.Push(_stack.Count); break;    // MARK
                case (byte)'}': Push(new PickleDict()); break;       // EMPTY_DICT
                case (byte)']': Push(new List<object>()); break;     // EMPTY_LIST
                case (byte)')': Push(Array.Empty<object>()); break;  // EMPTY_TUPLE
                case (byte)'t': Push(PopToMark(at).ToArray()); break; // TUPLE
                case 0x85: Push(new[] { Pop(at) }); break;           // TUPLE1
                case 0x86: { var b = Pop(at); var a = Pop(at); Push(new[] { a, b }); break; } // TUPLE2
                case 0x87: { var c = Pop(at); var b = Pop(at); var a = Pop(at); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)'N': Push(PickleNone.Instance); break;    // NONE
                case 0x88: Push(true); break;                        // NEWTRUE
                case 0x89: Push(false); break;                       // NEWFALSE
                case (byte)'K': Push((long)ReadByte()); break;       // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Read(2))); break; // BININT2
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Read(4))); break;  // BININT
                case 0x8a: Push(ReadLong1(at)); break;               // LONG1
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Read(8))); break;         // BINFLOAT
                case (byte)'X': Push(ReadString(BinaryPrimitives.ReadUInt32LittleEndian(Read(4)), at)); break; // BINUNICODE
                case 0x8c: Push(ReadString(ReadByte(), at)); break;  // SHORT_BINUNICODE
                case 0x8d: Push(ReadString(BinaryPrimitives.ReadUInt64LittleEndian(Read(8)), at)); break; // BINUNICODE8
                case (byte)'c': Push(Global(ReadLine(at), ReadLine(at), at)); break; // GLOBAL
                case 0x93:                                           // STACK_GLOBAL
                {
                    var name = Pop(at) as string;
                    var module = Pop(at) as string;
                    if (module is null || name is null) throw Bad("STACK_GLOBAL needs two strings", at);
                    Push(Global(module, name, at));
                    break;
                }
                case (byte)'R': { var args = Pop(at); var callable = Pop(at); Push(Reduce(callable, args, at)); break; } // REDUCE
                case (byte)'b': Build(Pop(at), Peek(at), at); break; // BUILD
                case (byte)'Q': Push(PersistentLoad(Pop(at), at)); break; // BINPERSID
                case (byte)'s': { var v = Pop(at); var k = Pop(at); AsDict(Peek(at), at).Items.Add(new(k, v)); break; } // SETITEM
                case (byte)'u':                                      // SETITEMS
                {
                    var items = PopToMark(at);
                    if (items.Count % 2 != 0) throw Bad("SETITEMS with an odd number of values", at);
                    var dict = AsDict(Peek(at), at);
                    for (int i = 0; i < items.Count; i += 2) dict.Items.Add(new(items[i], items[i + 1]));
                    break;
                }
                case (byte)'a': { var v = Pop(at); AsList(Peek(at), at).Add(v); break; } // APPEND
                case (byte)'e': { var items = PopToMark(at); AsList(Peek(at), at).AddRange(items); break; } // APPENDS
                case (byte)'0': Pop(at); break;                      // POP
                case (byte)'1': PopToMark(at); break;                // POP_MARK
                case (byte)'q': _memo[ReadByte()] = Peek(at); break; // BINPUT
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Read(4))] = Peek(at); break; // LONG_BINPUT
                case 0x94: _memo[_memo.Count] = Peek(at); break;     // MEMOIZE
                case (byte)'h': Push(MemoGet(ReadByte(), at)); break; // BINGET
                case (byte)'j': Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(Read(4)), at)); break; // LONG_BINGET
                default:
                    throw Bad($"pickle opcode {OpcodeName(op)} (0x{op:x2}) is not allowed in a PyTorch state dict; refusing to load", at);
            }
        }
    }

    private PickleGlobal Global(string module, string name, int at)
    {
        var global = new PickleGlobal(module, name);
        if (!TorchPickleGlobals.IsAllowed(global.FullName))
            throw Bad($"pickle global '{global.FullName}' is not allowed (a PyTorch state dict only names collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch storage types); refusing to load", at);
        return global;
    }

    private object Reduce(object callable, object args, int at)
    {
        if (callable is not PickleGlobal global) throw Bad($"REDUCE on a {Describe(callable)}, not a global", at);
        if (args is not object[] a) throw Bad($"REDUCE arguments are a {Describe(args)}, not a tuple", at);
        switch (global.FullName)
        {
            case TorchPickleGlobals.OrderedDict:
                if (a.Length != 0) throw Bad("collections.OrderedDict called with arguments", at);
                return new PickleDict();
            case TorchPickleGlobals.RebuildTensorV2:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (a.Length is < 6 or > 7 || a[0] is not TorchStorage storage || a[1] is not long offset
                    || a[2] is not object[] size || a[3] is not object[] stride || size.Length != stride.Length)
                    throw Bad("torch._utils._rebuild_tensor_v2 called with unexpected arguments", at);
                return new TorchTensor(storage, offset, Longs(size, at), Longs(stride, at));
            case TorchPickleGlobals.RebuildParameter:
                // (data, requires_grad, backward_hooks): a Parameter is its data for our purposes.
                if (a.Length != 3 || a[0] is not TorchTensor data) throw Bad("torch._utils._rebuild_parameter called with unexpected arguments", at);
                return data;
            default:
                throw Bad($"pickle global '{global.FullName}' may not be called", at);
        }
    }

    /// <summary>BUILD sets an object's state; PyTorch only does it for the state dict's <c>_metadata</c>, which we ignore.</summary>
    private void Build(object state, object target, int at)
    {
        if (target is not PickleDict) throw Bad($"BUILD on a {Describe(target)}; only dicts may receive state", at);
        if (state is not (PickleDict or PickleNone)) throw Bad($"BUILD with a {Describe(state)} as state", at);
    }

    /// <summary>Persistent id <c>('storage', storage_type, key, location, numel)</c>.</summary>
    private TorchStorage PersistentLoad(object pid, int at)
    {
        if (pid is not object[] { Length: 5 } t || t[0] is not "storage" || t[1] is not PickleGlobal type
            || t[2] is not string key || t[3] is not string location || t[4] is not long numel || numel < 0)
            throw Bad("persistent id is not ('storage', type, key, location, numel)", at);
        if (!TorchPickleGlobals.IsStorageType(type.FullName, out var dtype))
            throw Bad($"persistent id names '{type.FullName}', which is not a storage type", at);
        return new TorchStorage(type.FullName, dtype, key, location, numel);
    }

    private long[] Longs(object[] values, int at)
    {
        var result = new long[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = values[i] is long v ? v : throw Bad("tensor size or stride is not a tuple of integers", at);
        return result;
    }

    private object ReadLong1(int at)
    {
        int n = ReadByte();
        if (n > 8) throw Bad($"integer of {n} bytes is too large", at);
        var bytes = Read(n);
        long value = 0;
        for (int i = n - 1; i >= 0; i--) value = (value << 8) | bytes[i];
        if (n is > 0 and < 8 && (bytes[n - 1] & 0x80) != 0) value -= 1L << (8 * n); // two's complement sign
        return value;
    }

    private string ReadString(ulong length, int at)
    {
        if (length > (ulong)(_data.Length - _position)) throw Bad("string runs beyond the end of data.pkl (truncated?)", at);
        return Encoding.UTF8.GetString(Read((int)length));
    }

    private string ReadLine(int at)
    {
        int end = Array.IndexOf(_data, (byte)'\n', _position);
        if (end < 0) throw Bad("GLOBAL name runs beyond the end of data.pkl", at);
        string text = Encoding.UTF8.GetString(_data, _position, end - _position);
        _position = end + 1;
        return text;
    }

    private byte ReadByte() => Read(1)[0];

    private ReadOnlySpan<byte> Read(int count)
    {
        if (count > _data.Length - _position) throw Bad("data.pkl ends in the middle of an opcode (truncated?)", _position);
        var span = _data.AsSpan(_position, count);
        _position += count;
        return span;
    }

    private void Push(object value) => _stack.Add(value);

    private object Pop(int at)
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count <= floor) throw Bad("pickle stack underflow", at);
        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object Peek(int at)
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        return _stack.Count > floor ? _stack[^1] : throw Bad("pickle stack underflow", at);
    }

    private List<object> PopToMark(int at)
    {
        if (_marks.Count == 0) throw Bad("pickle has no MARK to pop to", at);
        int mark = _marks.Pop();
        var items = _stack.GetRange(mark, _stack.Count - mark);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private object MemoGet(long index, int at) =>
        _memo.TryGetValue(index, out var value) ? value : throw Bad($"memo slot {index} is empty", at);

    private PickleDict AsDict(object value, int at) => value as PickleDict ?? throw Bad($"SETITEM on a {Describe(value)}, not a dict", at);

    private List<object> AsList(object value, int at) => value as List<object> ?? throw Bad($"APPEND on a {Describe(value)}, not a list", at);

    private CheckpointException Bad(string why, int at) => new(_file, null, $"data.pkl offset {at}: {why}");

    private static string Describe(object? value) => value switch
    {
        null => "nothing",
        PickleNone => "None",
        string s => $"string '{s}'",
        long l => $"integer {l}",
        bool b => b ? "True" : "False",
        object[] => "tuple",
        List<object> => "list",
        PickleDict => "dict",
        PickleGlobal g => $"global '{g.FullName}'",
        TorchStorage => "storage",
        TorchTensor => "tensor",
        _ => value.GetType().Name,
    };

    /// <summary>Names of the opcodes we refuse, so that the error says what the file tried to do.</summary>
    private static string OpcodeName(byte op) => op switch
    {
        (byte)'i' => "INST",
        (byte)'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        (byte)'P' => "PERSID",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        (byte)'I' => "INT",
        (byte)'L' => "LONG",
        0x8b => "LONG4",
        (byte)'F' => "FLOAT",
        (byte)'S' => "STRING",
        (byte)'T' => "BINSTRING",
        (byte)'U' => "SHORT_BINSTRING",
        (byte)'V' => "UNICODE",
        (byte)'B' => "BINBYTES",
        (byte)'C' => "SHORT_BINBYTES",
        0x8e => "BINBYTES8",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        (byte)'p' => "PUT",
        (byte)'g' => "GET",
        (byte)'d' => "DICT",
        (byte)'l' => "LIST",
        (byte)'2' => "DUP",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        _ => "unknown",
    };
}
