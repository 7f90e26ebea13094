namespace EdgeQuant.Models.Loading;

public static class GgufModelLoader
{
    public static Model Load(string path) => throw new NotImplementedException("GgufModelLoader is being written");
}
