using System.Buffers.Binary;
using System.Text;

namespace GptJx.TestModels;

/// <summary>
/// Writes a zip of stored (uncompressed) members the way torch.save does: each
/// member's data starts on a 64-byte boundary (padding goes in an extra field)
/// so that readers can map tensors in place, and ZIP64 records are added once
/// sizes or offsets pass 4 GiB. Member data is streamed; the CRC is patched
/// into the local header afterwards, so the stream must be seekable.
/// </summary>
internal sealed class ZipWriter
{
    private const int Alignment = 64;
    private const uint Saturated = 0xFFFFFFFF;
    private const ushort DosDate = (1 << 5) | 1; // 1980-01-01: a valid date, and reproducible output

    private readonly Stream _stream;
    private readonly List<(byte[] Name, long HeaderOffset, long Size, uint Crc)> _entries = [];
    private (byte[] Name, long HeaderOffset, long Size, long Written, uint Crc)? _open;

    private readonly bool _forceZip64;

    /// <param name="forceZip64">Use ZIP64 records even for small archives (lets tests cover them cheaply).</param>
    public ZipWriter(Stream stream, bool forceZip64 = false)
    {
        _stream = stream;
        _forceZip64 = forceZip64;
    }

    public void AddEntry(string name, ReadOnlySpan<byte> data)
    {
        BeginEntry(name, data.Length);
        Write(data);
        EndEntry();
    }

    public void BeginEntry(string name, long size)
    {
        if (_open is not null) throw new InvalidOperationException("previous zip member not finished");
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        long headerOffset = _stream.Position;
        bool zip64 = size >= Saturated || _forceZip64;
        int zip64Length = zip64 ? 4 + 16 : 0;
        long unpadded = headerOffset + 30 + nameBytes.Length + zip64Length + 4;
        int pad = (int)((Alignment - unpadded % Alignment) % Alignment);

        Span<byte> header = stackalloc byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], (ushort)(zip64 ? 45 : 20));
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 0);          // flags
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], 0);          // stored
        BinaryPrimitives.WriteUInt16LittleEndian(header[10..], 0);         // time
        BinaryPrimitives.WriteUInt16LittleEndian(header[12..], DosDate);
        BinaryPrimitives.WriteUInt32LittleEndian(header[14..], 0);         // CRC, patched in EndEntry
        BinaryPrimitives.WriteUInt32LittleEndian(header[18..], zip64 ? Saturated : (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(header[22..], zip64 ? Saturated : (uint)size);
        BinaryPrimitives.WriteUInt16LittleEndian(header[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(header[28..], (ushort)(zip64Length + 4 + pad));
        _stream.Write(header);
        _stream.Write(nameBytes);
        if (zip64)
        {
            Span<byte> extra = stackalloc byte[20];
            BinaryPrimitives.WriteUInt16LittleEndian(extra, 0x0001);
            BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], 16);
            BinaryPrimitives.WriteUInt64LittleEndian(extra[4..], (ulong)size);
            BinaryPrimitives.WriteUInt64LittleEndian(extra[12..], (ulong)size);
            _stream.Write(extra);
        }
        // torch pads with an extra field of id "FB" filled with 'Z'.
        Span<byte> padding = stackalloc byte[4 + pad];
        padding.Fill((byte)'Z');
        BinaryPrimitives.WriteUInt16LittleEndian(padding, 0x4246);
        BinaryPrimitives.WriteUInt16LittleEndian(padding[2..], (ushort)pad);
        _stream.Write(padding);
        _open = (nameBytes, headerOffset, size, 0, 0);
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        var open = _open ?? throw new InvalidOperationException("no zip member open");
        _stream.Write(data);
        _open = open with { Written = open.Written + data.Length, Crc = Crc32.Append(open.Crc, data) };
    }

    public void EndEntry()
    {
        var open = _open ?? throw new InvalidOperationException("no zip member open");
        if (open.Written != open.Size)
            throw new InvalidOperationException($"zip member declared {open.Size} bytes but {open.Written} were written");
        long end = _stream.Position;
        _stream.Position = open.HeaderOffset + 14;
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, open.Crc);
        _stream.Write(crc);
        _stream.Position = end;
        _entries.Add((open.Name, open.HeaderOffset, open.Size, open.Crc));
        _open = null;
    }

    /// <summary>Writes the central directory and end records.</summary>
    public void Finish()
    {
        if (_open is not null) throw new InvalidOperationException("zip member not finished");
        long directoryOffset = _stream.Position;
        Span<byte> entry = stackalloc byte[46 + 28];
        foreach (var (name, headerOffset, size, crc) in _entries)
        {
            bool bigSize = size >= Saturated || _forceZip64, bigOffset = headerOffset >= Saturated || _forceZip64;
            int extraLength = (bigSize || bigOffset) ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
            entry.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(entry, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[4..], (ushort)(extraLength > 0 ? 45 : 20)); // made by
            BinaryPrimitives.WriteUInt16LittleEndian(entry[6..], (ushort)(extraLength > 0 ? 45 : 20)); // needed
            BinaryPrimitives.WriteUInt16LittleEndian(entry[14..], DosDate);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[16..], crc);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[20..], bigSize ? Saturated : (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[24..], bigSize ? Saturated : (uint)size);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[28..], (ushort)name.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[30..], (ushort)extraLength);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[42..], bigOffset ? Saturated : (uint)headerOffset);
            int extraAt = 46;
            if (extraLength > 0)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(entry[46..], 0x0001);
                BinaryPrimitives.WriteUInt16LittleEndian(entry[48..], (ushort)(extraLength - 4));
                extraAt = 50;
                if (bigSize)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(entry[extraAt..], (ulong)size);
                    BinaryPrimitives.WriteUInt64LittleEndian(entry[(extraAt + 8)..], (ulong)size);
                    extraAt += 16;
                }
                if (bigOffset) BinaryPrimitives.WriteUInt64LittleEndian(entry[extraAt..], (ulong)headerOffset);
            }
            _stream.Write(entry[..46]);
            _stream.Write(name);
            _stream.Write(entry.Slice(46, extraLength));
        }

        long directorySize = _stream.Position - directoryOffset;
        long count = _entries.Count;
        bool zip64 = count >= 0xFFFF || directoryOffset >= Saturated || directorySize >= Saturated || _forceZip64;
        if (zip64)
        {
            long recordOffset = _stream.Position;
            Span<byte> record = stackalloc byte[56 + 20];
            record.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(record, 0x06064b50);
            BinaryPrimitives.WriteUInt64LittleEndian(record[4..], 44);      // size of the rest of the record
            BinaryPrimitives.WriteUInt16LittleEndian(record[12..], 45);
            BinaryPrimitives.WriteUInt16LittleEndian(record[14..], 45);
            BinaryPrimitives.WriteUInt64LittleEndian(record[24..], (ulong)count);
            BinaryPrimitives.WriteUInt64LittleEndian(record[32..], (ulong)count);
            BinaryPrimitives.WriteUInt64LittleEndian(record[40..], (ulong)directorySize);
            BinaryPrimitives.WriteUInt64LittleEndian(record[48..], (ulong)directoryOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(record[56..], 0x07064b50); // locator
            BinaryPrimitives.WriteUInt64LittleEndian(record[64..], (ulong)recordOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(record[72..], 1);          // total disks
            _stream.Write(record);
        }

        Span<byte> end = stackalloc byte[22];
        end.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(end[8..], zip64 ? (ushort)0xFFFF : (ushort)count);
        BinaryPrimitives.WriteUInt16LittleEndian(end[10..], zip64 ? (ushort)0xFFFF : (ushort)count);
        BinaryPrimitives.WriteUInt32LittleEndian(end[12..], zip64 ? Saturated : (uint)directorySize);
        BinaryPrimitives.WriteUInt32LittleEndian(end[16..], zip64 ? Saturated : (uint)directoryOffset);
        _stream.Write(end);
    }
}
