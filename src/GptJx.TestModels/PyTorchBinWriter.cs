using System.Text;

namespace GptJx.TestModels;

/// <summary>
/// Writes a torch.save archive of a state dict: <c>data.pkl</c>, <c>byteorder</c>,
/// one <c>data/{i}</c> storage per tensor (64-byte aligned) and <c>version</c>,
/// all stored uncompressed under one archive folder, as PyTorch lays them out.
/// </summary>
internal static class PyTorchBinWriter
{
    /// <summary>torch.save names the folder after the file it writes; ours is pytorch_model.bin.</summary>
    public const string ArchiveFolder = "pytorch_model";

    public static void Write(Stream stream, IReadOnlyList<TensorSpec> tensors, TensorStreamer streamer, bool forceZip64 = false)
    {
        var pickled = tensors.Select((t, i) => PickledTensor.Contiguous(t.Name, t.DType, i.ToString(), t.Shape)).ToList();
        var zip = new ZipWriter(stream, forceZip64);
        zip.AddEntry($"{ArchiveFolder}/data.pkl", TorchPickleWriter.Write(pickled));
        zip.AddEntry($"{ArchiveFolder}/byteorder", Encoding.ASCII.GetBytes("little"));
        for (int i = 0; i < tensors.Count; i++)
        {
            zip.BeginEntry($"{ArchiveFolder}/data/{i}", tensors[i].ByteLength);
            zip.Write(streamer.Produce(tensors[i]));
            zip.EndEntry();
            streamer.Written(tensors[i].ByteLength);
        }
        zip.AddEntry($"{ArchiveFolder}/version", Encoding.ASCII.GetBytes("3\n"));
        zip.Finish();
    }
}
