using System.Buffers.Binary;
using System.Text;

namespace GptJx.Checkpoints;

/// <summary>One member of a zip archive: where its bytes start and how it is stored.</summary>
internal sealed record ZipEntry(string Name, ushort Method, long DataOffset, long CompressedSize, long Size);

/// <summary>
/// A minimal zip reader over a mapped file, enough for the archives torch.save
/// writes: it reads the central directory (ZIP64 included, for files above
/// 4 GiB) and resolves each member's data offset through its local header.
/// It never decompresses: torch stores members uncompressed, so a member's
/// bytes can be used in place.
/// </summary>
internal static class ZipDirectory
{
    private const uint EndOfDirectorySignature = 0x06054b50;
    private const uint Zip64EndOfDirectorySignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const uint DirectoryEntrySignature = 0x02014b50;
    private const uint LocalHeaderSignature = 0x04034b50;

    // Fixed sizes of the records (before their variable-length names, extras and comments).
    private const int EndOfDirectoryBytes = 22, Zip64LocatorBytes = 20, Zip64EndOfDirectoryBytes = 56;
    private const int DirectoryEntryBytes = 46, LocalHeaderBytes = 30;

    /// <summary>
    /// Every offset and size read from the file is checked with <see cref="MappedFile.Holds"/>,
    /// which cannot overflow: ZIP64 fields are 64-bit and a hostile file may set them to anything
    /// (values above long.MaxValue read as negative and are refused too).
    /// </summary>
    public static List<ZipEntry> Read(MappedFile file)
    {
        string path = file.Path;
        long length = file.Length;
        CheckpointException Bad(string why) => new(path, null, why);

        long eocd = FindEndOfDirectory(file) ?? throw Bad("no zip end-of-central-directory record found (truncated file or not a zip archive)");
        var end = file.Span(eocd, EndOfDirectoryBytes);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(end[10..]);
        long directorySize = BinaryPrimitives.ReadUInt32LittleEndian(end[12..]);
        long directoryOffset = BinaryPrimitives.ReadUInt32LittleEndian(end[16..]);

        // Any saturated field means the real values are in the ZIP64 record,
        // which a locator just before the end record points to.
        if (count == 0xFFFF || directorySize == 0xFFFFFFFF || directoryOffset == 0xFFFFFFFF)
        {
            long locator = eocd - Zip64LocatorBytes;
            if (locator < 0 || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(locator, 4)) != Zip64LocatorSignature)
                throw Bad("ZIP64 end-of-central-directory locator is missing");
            long record = (long)BinaryPrimitives.ReadUInt64LittleEndian(file.Span(locator + 8, 8));
            if (!file.Holds(record, Zip64EndOfDirectoryBytes) || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(record, 4)) != Zip64EndOfDirectorySignature)
                throw Bad($"ZIP64 end-of-central-directory record at offset {(ulong)record} is missing or corrupt");
            var r = file.Span(record, Zip64EndOfDirectoryBytes);
            count = (long)BinaryPrimitives.ReadUInt64LittleEndian(r[32..]);
            directorySize = (long)BinaryPrimitives.ReadUInt64LittleEndian(r[40..]);
            directoryOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(r[48..]);
        }

        if (!file.Holds(directoryOffset, directorySize))
            throw Bad($"zip central directory [{(ulong)directoryOffset}, +{(ulong)directorySize}) lies outside the file of {length} bytes (truncated file?)");
        long directoryEnd = directoryOffset + directorySize;
        // Every entry takes at least its fixed header, which bounds a believable count.
        if (count < 0 || count > directorySize / DirectoryEntryBytes)
            throw Bad($"zip central directory of {directorySize} bytes cannot hold the {(ulong)count} entries it claims");

        var entries = new List<ZipEntry>((int)Math.Min(count, 1 << 20));
        long position = directoryOffset;
        for (long i = 0; i < count; i++)
        {
            if (directoryEnd - position < DirectoryEntryBytes || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(position, 4)) != DirectoryEntrySignature)
                throw Bad($"zip central directory entry {i} (offset {position}) is corrupt");
            var h = file.Span(position, DirectoryEntryBytes);
            ushort method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            long localHeader = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            long entryLength = DirectoryEntryBytes + nameLength + extraLength + commentLength;
            if (directoryEnd - position < entryLength)
                throw Bad($"zip central directory entry {i} (offset {position}) runs past the end of the directory");
            string name = Encoding.UTF8.GetString(file.Span(position + DirectoryEntryBytes, nameLength));
            ReadZip64Extra(file.Span(position + DirectoryEntryBytes + nameLength, extraLength), ref size, ref compressed, ref localHeader);

            if (!file.Holds(localHeader, LocalHeaderBytes) || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(localHeader, 4)) != LocalHeaderSignature)
                throw Bad($"zip entry '{name}' has no valid local header at offset {(ulong)localHeader} (truncated file?)");
            var local = file.Span(localHeader, LocalHeaderBytes);
            long dataOffset = localHeader + LocalHeaderBytes + BinaryPrimitives.ReadUInt16LittleEndian(local[26..]) + BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
            if (method == 0 && compressed != size)
                throw Bad($"zip entry '{name}' is stored but its sizes disagree ({(ulong)compressed} vs {(ulong)size})");
            if (size < 0 || !file.Holds(dataOffset, compressed))
                throw Bad($"zip entry '{name}' of {(ulong)compressed} bytes at offset {dataOffset} runs beyond the end of the file of {length} bytes (truncated file?)");

            entries.Add(new ZipEntry(name, method, dataOffset, compressed, size));
            position += entryLength;
        }
        return entries;
    }

    /// <summary>The end record sits in the last 22 + 65535 (comment) bytes; scan backwards for it.</summary>
    private static long? FindEndOfDirectory(MappedFile file)
    {
        long stop = Math.Max(0, file.Length - EndOfDirectoryBytes - 0xFFFF);
        for (long p = file.Length - EndOfDirectoryBytes; p >= stop; p--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(file.Span(p, 4)) == EndOfDirectorySignature)
                return p;
        }
        return null;
    }

    /// <summary>The ZIP64 extra field holds, in this order, only the fields saturated in the header.</summary>
    private static void ReadZip64Extra(ReadOnlySpan<byte> extra, ref long size, ref long compressed, ref long localHeader)
    {
        while (extra.Length >= 4)
        {
            ushort id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            int length = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]), extra.Length - 4);
            var data = extra.Slice(4, length);
            if (id == 0x0001)
            {
                if (size == 0xFFFFFFFF && data.Length >= 8) { size = (long)BinaryPrimitives.ReadUInt64LittleEndian(data); data = data[8..]; }
                if (compressed == 0xFFFFFFFF && data.Length >= 8) { compressed = (long)BinaryPrimitives.ReadUInt64LittleEndian(data); data = data[8..]; }
                if (localHeader == 0xFFFFFFFF && data.Length >= 8) { localHeader = (long)BinaryPrimitives.ReadUInt64LittleEndian(data); }
                return;
            }
            extra = extra[(4 + length)..];
        }
    }
}
