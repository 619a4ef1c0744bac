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

    public static List<ZipEntry> Read(MappedFile file)
    {
        string path = file.Path;
        long length = file.Length;
        CheckpointException Bad(string why) => new(path, null, why);

        long eocd = FindEndOfDirectory(file) ?? throw Bad("no zip end-of-central-directory record found (truncated file or not a zip archive)");
        var end = file.Span(eocd, 22);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(end[10..]);
        long directorySize = BinaryPrimitives.ReadUInt32LittleEndian(end[12..]);
        long directoryOffset = BinaryPrimitives.ReadUInt32LittleEndian(end[16..]);

        // Any saturated field means the real values are in the ZIP64 record,
        // which a locator just before the end record points to.
        if (count == 0xFFFF || directorySize == 0xFFFFFFFF || directoryOffset == 0xFFFFFFFF)
        {
            long locator = eocd - 20;
            if (locator < 0 || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(locator, 4)) != Zip64LocatorSignature)
                throw Bad("ZIP64 end-of-central-directory locator is missing");
            long record = (long)BinaryPrimitives.ReadUInt64LittleEndian(file.Span(locator + 8, 8));
            if (record < 0 || record + 56 > length || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(record, 4)) != Zip64EndOfDirectorySignature)
                throw Bad("ZIP64 end-of-central-directory record is missing or corrupt");
            var r = file.Span(record, 56);
            count = (long)BinaryPrimitives.ReadUInt64LittleEndian(r[32..]);
            directorySize = (long)BinaryPrimitives.ReadUInt64LittleEndian(r[40..]);
            directoryOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(r[48..]);
        }

        if (directoryOffset < 0 || directorySize < 0 || directoryOffset + directorySize > length)
            throw Bad($"zip central directory [{directoryOffset}, +{directorySize}) lies outside the file of {length} bytes (truncated file?)");

        var entries = new List<ZipEntry>((int)Math.Min(count, 1 << 20));
        long position = directoryOffset;
        for (long i = 0; i < count; i++)
        {
            if (position + 46 > directoryOffset + directorySize || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(position, 4)) != DirectoryEntrySignature)
                throw Bad($"zip central directory entry {i} is corrupt");
            var h = file.Span(position, 46);
            ushort method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            long localHeader = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            if (position + 46 + nameLength + extraLength + commentLength > directoryOffset + directorySize)
                throw Bad($"zip central directory entry {i} is corrupt");
            string name = Encoding.UTF8.GetString(file.Span(position + 46, nameLength));
            ReadZip64Extra(file.Span(position + 46 + nameLength, extraLength), ref size, ref compressed, ref localHeader);

            if (localHeader < 0 || localHeader + 30 > length || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(localHeader, 4)) != LocalHeaderSignature)
                throw Bad($"zip entry '{name}' has no valid local header (truncated file?)");
            var local = file.Span(localHeader, 30);
            long dataOffset = localHeader + 30 + BinaryPrimitives.ReadUInt16LittleEndian(local[26..]) + BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
            if (method == 0 && compressed != size)
                throw Bad($"zip entry '{name}' is stored but its sizes disagree ({compressed} vs {size})");
            if (dataOffset + compressed > length)
                throw Bad($"zip entry '{name}' runs beyond the end of the file of {length} bytes (truncated file?)");

            entries.Add(new ZipEntry(name, method, dataOffset, compressed, size));
            position += 46 + nameLength + extraLength + commentLength;
        }
        return entries;
    }

    /// <summary>The end record sits in the last 22 + 65535 (comment) bytes; scan backwards for it.</summary>
    private static long? FindEndOfDirectory(MappedFile file)
    {
        long stop = Math.Max(0, file.Length - 22 - 0xFFFF);
        for (long p = file.Length - 22; p >= stop; p--)
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
