/*
 * test_hashring.c: ketama rings (core/keys/hashring.c) and MD5 (core/keys/md5.c), checked only
 * against references this code did not produce: RFC 1321 and Python's hashlib for MD5;
 * the independent Python model /work/shared/reference/ketama_vectors.py, whose vectors
 * and model results are pasted below as data (CI has only the repository); and the real
 * libmemcached, linked in, compared on 100,000 or more keys per ring. Also: tie rules on
 * real point collisions found by a birthday search, wrap-around, partial-key hashing,
 * node list parsing and its error messages, and a rough lookup speed.
 *
 * The data below was generated once with Python 3 from that model and hashlib:
 * md5_input(n) is the xorshift32 stream of md5_input() here; model_key(i) likewise;
 * tie_cases come from searching hosts 10.77.x.y for two whose point sets share a value,
 * then a key "tie-N" whose hash lands on that value.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <libmemcached/memcached.h>

#include "hashring.h"
#include "md5.h"

#define LIBMC_KEYS   100000 /* keys compared with libmemcached per ring */
#define TEST_KEY_MAX 250    /* memcached's key length limit */
#define SPEED_KEYS   1000000
#define SPEED_NODES  100
#define MODEL_KEYS   300
#define ERR_BYTES    512

struct ref_vector {
	const char *variant;
	enum hashring_kind kind;
	const char *key;
	size_t len;
	uint32_t hash;
	unsigned port;
	unsigned node;
};

struct model_case {
	enum hashring_kind kind;
	unsigned points;
	const char *nodes;
	uint32_t raw_points;	  /* the model's ring size before ties */
	uint32_t distinct_points; /* and its distinct values */
	const char *owners;	  /* owner of model_key(i), one digit per key */
};

struct tie_case {
	enum hashring_kind kind;
	const char *a, *b; /* two nodes with a point of the same value */
	uint32_t value;	   /* that value */
	const char *key;   /* a key whose hash lands on it */
	unsigned winner;   /* owner's index in the list "a,b" */
};

/* ---- data generated with Python (see the top of the file) ---- */

/* MD5 of md5_input(len) for len = 0..300 (hashlib). */
static const char *const md5_random_hex[301] = {
	"d41d8cd98f00b204e9800998ecf8427e", "fbade9e36a3f36d3d676c1b808451dd7",
	"46b2fa514cb12a00d8bcf473862cc004", "45ef0b37f45e1b2011c2675cef47aa62",
	"dadcb972fc78402b21464654fc4c0bb4", "51d342e4a2b430aec076c30751d4d939",
	"78bfc002de5185e5511410aa3883e625", "a7d2eefeb08ae6ba9f786550c7fbd5eb",
	"c49361f10ed11e81aff360cb0bb2794f", "5907fc255248cb4008e35ba4b9004e8e",
	"c6b71bbc4770b361b608caff91fc8fae", "bc0af20862a7455ff2a09e0ef11fdb10",
	"7ecab711412bcde03877345ffd9f13a2", "a5e862cf9f6187d17d265dec99b7069e",
	"be93c6dbe9bfeaa9930328bef4b210a7", "509b56841d04d949e0b3837909874ea8",
	"36f5ffc891b4074f162e8d8744d1b7db", "4a074e168fd2f133aaa93a99b46b7cdb",
	"595429277996c0766b48bbece0dcbdc2", "9bb8292e300159bd96b98107f157008c",
	"1306dbe2079265b29d4ae7d3d464c811", "5afeb776b8acfa99c58a261ecb69987a",
	"3a1c4526707b11376e47f3b871d2c687", "6e8246368c2ca0b17c7f7ef578ff0479",
	"e549f91da02639e216c994e2a745bfb7", "273da612149fc9c6e9db089fdd85d86d",
	"4a47f99510acea04625982158a7d32e4", "50df391f13920dc4046d658b08a0de8b",
	"a0e8293667cc87f6c70c429f4c034dc3", "78d1016d5dbefd64ff27b5127c402a55",
	"e65bd0d53c097d5dcc4044e3d5b36a39", "12325cb294a22c640599513c5f01f507",
	"23e57ded2aecf5d1cd4aa8808ba5f550", "549f88ac017bf848b897306679351346",
	"31389e37506b4b4e138954c48eccae36", "c529e7ecd246f1f15a1cc9a35d1aa37a",
	"5325ff09a3a479c2b4e6bf402b3fc854", "c0dccccda9779a32b9cc752908d4997e",
	"2ef852afd99035da3413bef8ece0b106", "493f214bac977147503ccff7800e4d74",
	"fc12c558e5ceb1489c3be9ff9a2e4e79", "125f74748a2f49edc918e3d66ed5fe14",
	"247901671bf1eb2f25ad79e85e847795", "b68bfccf13ce52b0fa032d9f105c3e5f",
	"e7dbacfc85afbbc2edffda488cb5aa76", "39b2d96c5fcc9e0d8d6ddc4c5aa5abe7",
	"35464d5e1bcf5a26f151caa421f99ab5", "943788218fd3d418119125658118dfd2",
	"73b4c8df655f8f0142ebc235a1c2d7a6", "261223f1db3daa643678d55fcfa3c92e",
	"d76af1038ce0ad32dd99e5d425c5922e", "77a5e1d3a923732d4b57e7142817f668",
	"22e4c8e1cad4e5f52113cff120a966ee", "cedd0165241be7689ff0377b0f139198",
	"734e0aa0901c46391e238e94c28d877d", "89c0101d3fff5a92eb15403f9868e339",
	"ce13426b7090c229ceae9e0929e7f55e", "38c5e832e5538dbfe613528b67f66f2b",
	"889a3013d37b704fe578e5b2e218ab26", "ab3fafc514a20026c1785159732a8682",
	"67032b2f60baaace400b140744776c43", "d57ce55f5586c84b118508764194a966",
	"72efcd529e92a6c572765609df6f5a4e", "53f9ce3e3bc203658c9fec45532ae38f",
	"97f0c544cf829c6ace2a7430cb503889", "9819a0d57a27670cbb6ff91370a496da",
	"5a6a704418c65b698f38953f42be15a3", "db0296c1da2a00cce353c07ad00488ec",
	"8cdcb6bdf35e0502dc597635c3b027af", "e2c5283da6bb657c2192b494b252e789",
	"58cde9fa4fe77aa1a24828f2f9593b7f", "717f073b71872693097fec7a4352ecc2",
	"2ca01fac6e07a4c99a128357be966e39", "b438f9e0db6095a6b6ab1a626868e0a8",
	"e16d058794c59a56d38a68855982d893", "f126b1231076b516bd8f9fd4978fc8a9",
	"838a342f2eedb38d08d247e18068592e", "002be605518ff4846b10195d78e16099",
	"9f93fda40f21bca03fc364b103d993d2", "ee0119420bd1c9c33f88d91884627e46",
	"7fda2d78d74f61f9cc77fd44670268f9", "18f35f14f5af2885fe4cdc42af78ca0b",
	"054bf4f8498eec03534e8aee75c6ff4d", "1451e2097325170fea843e5bc3e15181",
	"b416e8695e63c3f292e65528c2b74715", "0297aa97439cc9f5878714d3857a181e",
	"eb6cfc61f770e0959ec0dc9f4a18745a", "8481c73f0b70132e3436566c6b21e450",
	"4b36cc2704c5c8d80fa4e3b4c31b7cbe", "769adb95a6f11fc90ac3296a86236e2b",
	"c7207a734d8c6924e0c9c6a904068928", "11ea971c1afd9ffb70a4b012e1e13bda",
	"506a8cfef3329299b012a27b06a2bd44", "117ed3f5f6fdf9745a1e921494528a3a",
	"62a550c4831e23be19ee37ac40a7b265", "51379de339020e7e11098603f2a42f6e",
	"7b46a8d8396ffc1700a67fd1b8399d65", "fb68c1fe74ffdd298be124e6ca972a26",
	"4c36b0d1b6b244bc50a007d67a57ec5e", "d23752074a9c7bf7ef9e5cef6afd27e8",
	"ca202e3fcdcdfc8fb22f280972b60349", "9978997a086f048ff860522d073ca2cd",
	"6242c4753b4ef4ec8321d15f19207bc7", "020dc43ecb736784f68ecec8e18e557f",
	"acc30e352772c1739c80bf4b7e73b4ae", "82926c3c4856698851cb9ea15cb48f51",
	"f6426788f03233dcc678f9da2eaa357d", "d5c716481706f96da8fd23a9a6d50677",
	"37ab04c9e99d8984f99456020156fd40", "1447dcbbc51aa0a1b0445b1664f3cad6",
	"7bde6864dd0f7d75b185df756188b1ef", "327d02aea06243c3f182ec15f140c889",
	"1d01ab1c239cbf3837d01b100b57d98e", "e71a9e989d490e1c85aa344d097bd55b",
	"db23ed1cf2cca4a4b55ff84f08a38d36", "99d0f1a5b4516d968e99e35e466ed96e",
	"ca80c1caa2be4e0c7c513f84611bfe3f", "d8be02fe7a71db410902948404884988",
	"09b573151755a076ee6e84d7d8b07198", "fd679b495f793d64e28ffbe092bdadfd",
	"4f50687d5e4610dce7a07d77fd520562", "726e1443039c6889c084981b666cd5b3",
	"96a4649447f797a7735dedb1ceda368a", "5127a2eddf926f4888ac191e2a409ca3",
	"4879c133a07334eb398c29e28e80038e", "08ca1089c417d2bd78282168e5766b3a",
	"2b62774bcb22a259a41f4bb27e4792f9", "fa4b06e69a8a4951e933fd20984a4de4",
	"ab8b46ea83991547231e20e5266ccb41", "ae0145454798d5dedf67daef57b84a43",
	"78d6f1234aa3aa801fe6c297e640fe20", "47178b2893dc9f3a419cc5bab5df4ea8",
	"ea87670cfadefadaa2546612f22f422c", "d0475aafaa72896a2b8297021cbc4482",
	"a65548079f1354e88742cb2de5498b5d", "47b5386968e6e20a484c50f8be6d2940",
	"924aca2a9ba220d53987922a6ed3c4fc", "3bf3be69e2bc6ad31f763d0ce4a6cd98",
	"f6a7fc21ec87220aabf30f0d0faba0db", "0ccabaf2fac1c7946e5d9d200d4bbae7",
	"aa3196950940e10205bcd4a2ae9afa77", "7bd711d5057c9dad968c77b78a28de68",
	"1c9987820d1d074294012882afe83d80", "5f22eb51d5947bee3ee5e539dd71a4ca",
	"2989ef7277d952275c03429d27e17573", "23d1d7939f70a344c80eea67abc5f056",
	"9b4b678b81c9ed2df8898f905b1320ca", "827eef4e617ba0b487cfadf13e368344",
	"273a929cc33e48615fb902f0e07a5536", "11e759ecc0f05afc70dea059f0ee6be6",
	"c61e8e9e13b630ed06163f08709b18f3", "881f0802bf8389c6b8789d3c64586676",
	"663c60e323f4d8cfb66cc279e738d3b2", "02037f1939a57f49388a2c508c826439",
	"28983768505d19e6a1e11925e18657e1", "2d3610f6ca56ddebb519dc2cda130680",
	"f0bda648d32e8de38e101c07f19011bc", "482034b79e6d404b835441da643b53e0",
	"bd8944b848a0326c01c042bb4a0d6ff0", "8d26021f5baae75548f44842c7456677",
	"b882222d04687b5e15d2173cf0fdcc6d", "fb405322002052b9a3fbaece52e4a542",
	"eb75c5ca5d30d16d9850c40b3f537b40", "39ce327cb82d7704c516149480a1e6ea",
	"556276e77093bd2d55ba64108322b906", "dffe4c7953028265dcb869dd2690537d",
	"f8195813b8b9f60abbca8ae63a40a641", "df4e054da909f70c94055d9975ffd522",
	"468271305eecff52a727d2756bea4bc8", "b4421b97180c30bd6aee0a7bfd3506e6",
	"bbccf35711f3f78bad9aedb44473532c", "ebd99c80ee5fd82d3b6831a1c1f5b6eb",
	"fa00556cfc73dcafeed69cfcd99d1888", "0de39e1d63d583478c2d216755e1064c",
	"1c2168d1041407f4eeaad86e7c832257", "6cbf1bcf7d6712733dc9ec64eb2ba3b3",
	"e46c0b8a714c655e2b87ed029d1bb654", "533379acea37ea2c995b4c01fcf12da2",
	"87e6de8bf566bcf9d35e7ef1ca87e8be", "45468411661ef19b6ca85599ab1b48bb",
	"ccc6472f621af81063483c7e022e4054", "48f8048f41d2504b05702c8d359ef9c9",
	"1b8021bd932674d05e5b77307bdfa811", "f1b369546fef21f9c9b9ad140d175a51",
	"a55cd9e701cefefa22e4258377d082ab", "c9bc3f7da83b82d354ca6c589f464972",
	"23203dfc1b129091c8222fb9a10ca88c", "631b7744ed3f0c851e168adcb59dda3d",
	"5b52ed39a7372e2301f47d9c8f8aeb02", "477fe7dd22f1afd70932ecbff148bc39",
	"4cc1b4ba347787daefdb31f4eefcae27", "7b4225324773c300500cc173d499ebfd",
	"a90e1b6e563e1f9cfb447ad29422e4d8", "5f46ce7b630ea962c0446cc189e8d09b",
	"8054d0c032ac475fa36f312df5d0b439", "0ab8bad88f0ccf193fe7ae57c5773427",
	"26990253bec4bf62c67e7bf9806d9d9c", "2048dcb914335a893fddc62e4b24f49b",
	"2ddd573b26389de14adc4495c013fcd5", "e7fa731623b75b04032502bd6ae52188",
	"b3da60551f0cf5f7b5cf1c8cc29341c5", "40091fbd4a6ed9ed2d19e53517214167",
	"2d1fc7e9b0a588b9f3676915389e5132", "349fb6217694467c7f8bdbfe8d95f92b",
	"2024cda360a5f6d60228707619eee33a", "770b008bbbce41cd2998e4981ff66d57",
	"15fe703e4ca982b31127165ae7caa2ff", "5480adb5ebfc194afba67ff23c66ae52",
	"5c347de75b45f647a8c80fa73eff3966", "87ee7cd584698fd95809d2b39728c37d",
	"9fb71e3564109151de99b2afe111d413", "86ca465b6d3f9beb96797d02afaa2f5e",
	"c09836b05ba348cc1220b9747c4de129", "64972b40e1c48d48e1b07c7d9af55733",
	"a51191ed9330452ed1385ae9f24faded", "4e927cee5ae68b09f7644e554fa19529",
	"e04c54f77319f29e56eb55e8e4fd3aa0", "672a4b99bbe0382881eb5d2b73d1c3d0",
	"7ee86834f81426cd7d7306833b453906", "4f1775bed5d303cc70a40d6be7231fbc",
	"42de328ad9739bc6aa82fc287dc79924", "bed3f665ca728a9b8c90acef90aa5442",
	"aaab2cca10b8e3f3e585c36ea3f4875b", "aa512aa787bf6b12d9c96799fce0aa01",
	"1f5a7d2108262d5a87b75ac5b5055f9e", "a5a9d296fbdeb754bad4cbcbafae168d",
	"1c7119acc2b198e725f8a3cc6c1613d8", "f0bc93503405eeb9985cd19eee6f49b3",
	"19c20cbcc43e6f390487d416354c87e8", "d75bb61d626457fe2f250ba57f40c2a8",
	"c2a954da481aa40031e69fa4e9555a2b", "f70aff84fff9214b5c8cb2b3f32124f4",
	"1b6457d3945823c08f8c66d3f854a9b4", "dc760c66db007565d29d53c93d96b5bd",
	"976ae7018c8ae5201181ad620b995d5e", "34ca5087872155c371ff48ac4a6fb443",
	"f3a90fc017174665d32d1fd7124615a9", "9459bea4ae08872f5c517c321cc62506",
	"375524b5492ff8d85d46eea81540b610", "60d7cf32cb4c84dfce90d2201dd762c4",
	"bf4ccf5c045268360e4d063a3c8a8ec7", "71d6dcf6cf40f262d202999a2c5e2f9e",
	"811516af770b3d681f2ce693c01ac5f3", "e02ea2e8baa4562197e8648e85c95b23",
	"2951a63b34ab8e250d6537d861d469e9", "9597c57c7d570a3957d0c0510c9aba9d",
	"3ba1d7beacde0a3d87087575d6c283d5", "8fe0739811961bad915756849d13128e",
	"03098b5c3135f7e0493324a61b38473a", "d7ebaccd9d1fa71d2d9b11e6b8abf362",
	"403122bd35198d31e94bc42d366a5716", "8732566979799281d396d0b3103cecfb",
	"48407d99381c16780e8c9792067b228f", "40a9b12ba931e594c5e648f82fc00528",
	"6a80594cbf91eb16c223762bf16eabfb", "65765e8512d4af8bc3f4be1ccc30cfe4",
	"4fce0799b1d7899e0a55f0427adbda5d", "30f05a2cd9bc35c31ca23d3ce05d52e5",
	"0d83fa162495b01d09f6c29db5417588", "f83b637745a8c8b1f8574e92aebd6ebf",
	"5a7cddb7b6af381c6e94f5b37e95b1b1", "b51fb3c55a7d7c95026f09b3b6778a3b",
	"b9dada96c7606ecf7f5946146c94593b", "7a8ccf5813a63b0f1581e66292dd8fcd",
	"2b9e48514ecd9a1b644d408662e8c7aa", "e08ccf4e76fc2c2349d8cd0628fb0176",
	"cf8fc1011789b73b10d997baa6ab7787", "f880be0fd9874835ee4bbced7453e09e",
	"01cb33f4afd79c7365838f37acca9d6d", "34feb6ba53a6e3a83de7054a2b250873",
	"efd704a0147097b861b6c94884aefc8a", "b1e56af56003ba8c7ebf57d7bc333883",
	"e8390a7d32448b8bd3e9aebce6528eea", "36164449a035af37c293069e8d5d9971",
	"1e7d99dd9fad1e7c8e1cadcf50e054f1", "39625e1e4f00bf554973fb1b2f445247",
	"cd24ed9bf32a03606c4b42de9c64a61c", "ba6fa69af140c1d62f485b47e73cdc9d",
	"54b5ea6e109b744eb625d205093432cc", "38e9eb2b4b4fdd03e3e5cd77dc17baad",
	"b3342f5788fff1df18cb29baac08be21", "583521f43d2036e763c2d9ea48e8ab38",
	"06775c96cfb75dc9cff3eb4cf6f1fb2e", "4922953eae35bca24c67b9fd86035a7a",
	"8645e7baf9f174e0177c6c1a7508bb63", "2fb18fca60e6946ebfa66bc83c272a7e",
	"5adaa2215efcf51143d8f63297d65de5", "f71ea32b3320e9de459405fac5b595fc",
	"ad8517a67b370ea27367fe9f27b22059", "62fbe285d0cbc715e9300ac99235e141",
	"835ddf622aa87f6c547f16a8b03cc7cc", "e3bd335221dcfa82849a737eed59749f",
	"d280422358d6b5fdb36b42853ff47e8b", "63197fbb5d7bf1dd52c8cefc3ae64e38",
	"fa91c21e93ee5102c501ce24575826c6", "c669a913a25d9e800571f04e986762b6",
	"bdbb2d54d00f816c4d89efd3de72de6f", "bb84b53e1965b550c82853f47692c1e6",
	"0d70e2c6623d2e0394c1186e3f05ec3e", "3e17838d41cad6a507c213f3ad510cd0",
	"a8bbeaa3f2eece78106537e03620a7a8",
};
/* RFC 1321 appendix A.5 test suite. */
static const struct {
	const char *in;
	const char *hex;
} md5_rfc[] = {
	{ "", "d41d8cd98f00b204e9800998ecf8427e" },
	{ "a", "0cc175b9c0f1b6a831c399e269772661" },
	{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
	{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
	{ "abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b" },
	{ "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	  "d174ab98d277d9f5a5611c2c9f419d9f" },
	{ "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	  "57edf4a22be3c955ac49da2e2107b67a" },
};
/* Jenkins one-at-a-time, signed-char flavour (ketama_vectors.oaat). */
static const struct {
	const char *key;
	size_t len;
	uint32_t hash;
} oaat_vectors[] = {
	{ "foo", 3, 596015325u },
	{ "bar", 3, 2151715081u },
	{ "user:42", 7, 809463786u },
	{ "a", 1, 3392050242u },
	{ "", 0, 0u },
	{ "\x80", 1, 3273477671u },
	{ "\xff", 1, 2925896852u },
	{ "caf\xc3\xa9", 5, 3650908318u },
	{ "\xe2\x82\xac"
	  "100",
	  6, 2521542045u },
	{ "\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f"
	  "\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f"
	  "\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf"
	  "\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf"
	  "\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf"
	  "\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf"
	  "\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef"
	  "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff",
	  128, 2459061892u },
	{ "k\x7f\x80\x81", 4, 1303195432u },
};
/* The 250-byte key of the vectors (memcached's longest). */
#define X250                                                                                       \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"                         \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"                         \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"                         \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

/* python3 ketama_vectors.py --json --extra: servers 10.0.0.1..3, port 11211 (11311 for
 * libmc_w_11311); node is the index of the expected server. */
static const struct ref_vector ref_vectors[] = {
	{ "evcache", RING_EVCACHE, "foo", 3, 3675831724u, 11211, 0 },
	{ "evcache", RING_EVCACHE, "bar", 3, 421377335u, 11211, 0 },
	{ "evcache", RING_EVCACHE, "user:42", 7, 417323606u, 11211, 2 },
	{ "evcache", RING_EVCACHE, "a", 1, 3111502092u, 11211, 0 },
	{ "evcache", RING_EVCACHE, "", 0, 3649838548u, 11211, 2 },
	{ "evcache", RING_EVCACHE, "EVCACHE_APP:movie:12345", 23, 2106568084u, 11211, 1 },
	{ "evcache", RING_EVCACHE, "k:0000001", 9, 3520243481u, 11211, 1 },
	{ "evcache", RING_EVCACHE, "\xc3\xa9t\xc3\xa9", 5, 510308318u, 11211, 2 },
	{ "evcache", RING_EVCACHE, X250, 250, 1263649145u, 11211, 1 },
	{ "cachemover", RING_CACHEMOVER, "foo", 3, 3675831724u, 11211, 0 },
	{ "cachemover", RING_CACHEMOVER, "bar", 3, 421377335u, 11211, 0 },
	{ "cachemover", RING_CACHEMOVER, "user:42", 7, 417323606u, 11211, 2 },
	{ "cachemover", RING_CACHEMOVER, "a", 1, 3111502092u, 11211, 0 },
	{ "cachemover", RING_CACHEMOVER, "", 0, 3649838548u, 11211, 2 },
	{ "cachemover", RING_CACHEMOVER, "EVCACHE_APP:movie:12345", 23, 2106568084u, 11211, 1 },
	{ "cachemover", RING_CACHEMOVER, "k:0000001", 9, 3520243481u, 11211, 1 },
	{ "cachemover", RING_CACHEMOVER, "\xc3\xa9t\xc3\xa9", 5, 510308318u, 11211, 2 },
	{ "cachemover", RING_CACHEMOVER, X250, 250, 1263649145u, 11211, 1 },
	{ "spy", RING_SPYMEMCACHED, "foo", 3, 3675831724u, 11211, 2 },
	{ "spy", RING_SPYMEMCACHED, "bar", 3, 421377335u, 11211, 0 },
	{ "spy", RING_SPYMEMCACHED, "user:42", 7, 417323606u, 11211, 0 },
	{ "spy", RING_SPYMEMCACHED, "a", 1, 3111502092u, 11211, 2 },
	{ "spy", RING_SPYMEMCACHED, "", 0, 3649838548u, 11211, 1 },
	{ "spy", RING_SPYMEMCACHED, "EVCACHE_APP:movie:12345", 23, 2106568084u, 11211, 0 },
	{ "spy", RING_SPYMEMCACHED, "k:0000001", 9, 3520243481u, 11211, 2 },
	{ "spy", RING_SPYMEMCACHED, "\xc3\xa9t\xc3\xa9", 5, 510308318u, 11211, 0 },
	{ "spy", RING_SPYMEMCACHED, X250, 250, 1263649145u, 11211, 2 },
	{ "libmc_w", RING_LIBMEMCACHED, "foo", 3, 3675831724u, 11211, 1 },
	{ "libmc_w", RING_LIBMEMCACHED, "bar", 3, 421377335u, 11211, 1 },
	{ "libmc_w", RING_LIBMEMCACHED, "user:42", 7, 417323606u, 11211, 0 },
	{ "libmc_w", RING_LIBMEMCACHED, "a", 1, 3111502092u, 11211, 1 },
	{ "libmc_w", RING_LIBMEMCACHED, "", 0, 3649838548u, 11211, 1 },
	{ "libmc_w", RING_LIBMEMCACHED, "EVCACHE_APP:movie:12345", 23, 2106568084u, 11211, 0 },
	{ "libmc_w", RING_LIBMEMCACHED, "k:0000001", 9, 3520243481u, 11211, 0 },
	{ "libmc_w", RING_LIBMEMCACHED, "\xc3\xa9t\xc3\xa9", 5, 510308318u, 11211, 0 },
	{ "libmc_w", RING_LIBMEMCACHED, X250, 250, 1263649145u, 11211, 0 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "foo", 3, 3675831724u, 11311, 2 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "bar", 3, 421377335u, 11311, 2 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "user:42", 7, 417323606u, 11311, 2 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "a", 1, 3111502092u, 11311, 1 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "", 0, 3649838548u, 11311, 0 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "EVCACHE_APP:movie:12345", 23, 2106568084u, 11311,
	  2 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "k:0000001", 9, 3520243481u, 11311, 1 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, "\xc3\xa9t\xc3\xa9", 5, 510308318u, 11311, 1 },
	{ "libmc_w_11311", RING_LIBMEMCACHED, X250, 250, 1263649145u, 11311, 1 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "foo", 3, 3675831724u, 11211, 1 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "bar", 3, 421377335u, 11211, 2 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "user:42", 7, 417323606u, 11211, 2 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "a", 1, 3111502092u, 11211, 1 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "", 0, 3649838548u, 11211, 0 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "EVCACHE_APP:movie:12345", 23, 2106568084u, 11211,
	  1 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "k:0000001", 9, 3520243481u, 11211, 0 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, "\xc3\xa9t\xc3\xa9", 5, 510308318u, 11211, 2 },
	{ "libmc_md5", RING_LIBMEMCACHED_MD5, X250, 250, 1263649145u, 11211, 0 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "foo", 3, 596015325u, 11211, 2 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "bar", 3, 2151715081u, 11211, 0 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "user:42", 7, 809463786u, 11211, 1 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "a", 1, 3392050242u, 11211, 0 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "", 0, 0u, 11211, 1 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "EVCACHE_APP:movie:12345", 23, 1988148730u, 11211,
	  2 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "k:0000001", 9, 1787502690u, 11211, 1 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, "\xc3\xa9t\xc3\xa9", 5, 2144029493u, 11211, 0 },
	{ "libmc_oaat", RING_LIBMEMCACHED_OAAT, X250, 250, 51816958u, 11211, 1 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "foo", 3, 3675831724u, 11211, 2 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "bar", 3, 421377335u, 11211, 2 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "user:42", 7, 417323606u, 11211, 0 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "a", 1, 3111502092u, 11211, 0 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "", 0, 3649838548u, 11211, 1 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "EVCACHE_APP:movie:12345", 23, 2106568084u, 11211,
	  0 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "k:0000001", 9, 3520243481u, 11211, 0 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, "\xc3\xa9t\xc3\xa9", 5, 510308318u, 11211, 1 },
	{ "libmc_spy", RING_LIBMEMCACHED_SPY, X250, 250, 1263649145u, 11211, 0 },
};
/* Owners (as digits) of model_key(0..299) per ring, from the reference model. */
static const struct model_case model_cases[] = {
	{ RING_EVCACHE, 0,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1600, 1600,
	  "596864136061707688062232767976139587455093392607096000623425123841854441797"
	  "660621247722452977898008064654673670943946082721211890205288082758834513282"
	  "801947113564056254401554194885658303590287917558458184756067302663140351972"
	  "905554759698674990792083696853399676508743679291698857253866038327567018791" },
	{ RING_EVCACHE, 100,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1000, 1000,
	  "493860136071707128062232765986145587450293092607096820125725128821854441797"
	  "681222746742450977898002064652673670943550082751772867311284012748854527282"
	  "815847113564252231421551292880675303192227911254402964796835382663140351976"
	  "705324399638671953092081696268396676578743678291388757254826938177767038891" },
	{ RING_EVCACHE, 400,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  4000, 4000,
	  "151864164935087655354832769976169543408593395231136800663131443842427441752"
	  "660424147222022577804002564261678660783948180703213893925985082728836023512"
	  "501944913564053273493454494212628103395576150325857194350868302553407309516"
	  "902751751695473960422383096753326078501341669011661858757944034821487018732" },
	{ RING_CACHEMOVER, 0,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1600, 1600,
	  "861894746813307561112392781978339533465019096103098600586315329846951446197"
	  "636225217722138987399003064154575230944988842731275090305292322754364513132"
	  "303946601514050254401654594396855404390167967554453624356676402518810451372"
	  "905164756696671990312081498651663418503741879891893351253618013127877015796" },
	{ RING_CACHEMOVER, 200,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  2000, 2000,
	  "891894714813307451112442781978333533105019096203093600486335329346451446157"
	  "636226217722138987304003064252575240234976840731226010305295322724964513192"
	  "703946907504050270400654694396355104390167467554453624316616402718810551372"
	  "905164756696671990312011993651663313503718879891899651253614003127877015794" },
	{ RING_SPYMEMCACHED, 0,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1600, 1600,
	  "963889011743090908294054246563840115328063346650954337997561875016167862230"
	  "572636397279082342479793304612817583679378743057127973741502189082577594656"
	  "346510533913657076675526514976445139661666796666133393842360875901328353041"
	  "039200722859504309831743854141804804423339419244165623774047411502215445637" },
	{ RING_LIBMEMCACHED, 0,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1600, 1600,
	  "153885015473972005576777255563842220348103395609597332099962707219465879834"
	  "950932310822972452794353375519549585644320403477402755945504759884996255596"
	  "325715130315424256652009912902748135661506257656133335802362836471388323571"
	  "490548033235957397599693097171873087949336557374169663273120622704010027637" },
	{ RING_LIBMEMCACHED_MD5, 0,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1000, 1000,
	  "135829255278914230124799279773340262388208876309294388281862058351449833312"
	  "200130076200626472796056675303044770160860573213260929256828157634319143633"
	  "808815936315181607698880013926477539065636797534134265782315266026388319582"
	  "280166603464440302092343094171002064064231717844743060290926316706829916796" },
	{ RING_LIBMEMCACHED_OAAT, 0,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1000, 1000,
	  "776812013250535265265853244408670547141932620046730246821998430516716058345"
	  "877922705461653434209671311375059403353447995747708063393646196880551204861"
	  "411724191318158065913253402687012747838489913850432804374629138946101490342"
	  "273041744501501436220244531903342158432841938202481507466812922893920519484" },
	{ RING_LIBMEMCACHED_SPY, 0,
	  "10.1.0.1:11211,10.1.0.2:11311,10.1.0.3:11211,10.1.0.4:12000,10.1.0.5:112"
	  "11,10.1.0.6:11211,10.1.0.7:22122,10.1.0.8:11211,10.1.0.9:11212,10.1.0.10"
	  ":11211",
	  1000, 1000,
	  "984308618391439237131819078010064154516898235594376465046181839785057870481"
	  "544638006962595070760389906573847991077408393150556351466944141319561789555"
	  "946799875864232501517898865991630888388536330580963364918487764231532079466"
	  "003027531845796845803538556199292575566153717408255764966366895666955630127" },
	{ RING_LIBMEMCACHED, 0, "10.3.0.1=1,10.3.0.2=2,10.3.0.3=3,10.3.0.4=4", 640, 640,
	  "311223322121223031332322223221110213130312212302233223012022101332123331133"
	  "132313012330321323221333121312333330231213121303233222323332013210023313203"
	  "223123230132303123231232302231320123331232231113103012332232313333232333313"
	  "233323032332132302323113333233221333132313201133120331011332101302220033232" },
	{ RING_EVCACHE, 0,
	  "cache-a.example/10.2.0.1:11211,cache-b.example/10.2.0.2:11211,cache-c.ex"
	  "ample/10.2.0.3:11211,cache-d.example/10.2.0.4:11211",
	  640, 640,
	  "202000102020000121022311223212101313010203133210200121102003100322231033310"
	  "322122300021223122232003301222210210003303022001222033231221120131023311303"
	  "333001300021333301303000232312001000222332330303201211132100223020031130321"
	  "010323023312300011230021120230200330130001200302020000030310321122330310113" },
	{ RING_SPYMEMCACHED, 0,
	  "cache-a.example/10.2.0.1:11211,cache-b.example/10.2.0.2:11211,cache-c.ex"
	  "ample/10.2.0.3:11211,cache-d.example/10.2.0.4:11211",
	  640, 640,
	  "202000102020000121022311223212101313010203133210200121102003100322231033310"
	  "322122300021223122232003301222210210003303022001222033231221120131023311303"
	  "333001300021333301303000232312001000222332330303201211132100223020031130321"
	  "010323023312300011230021120230200330130001200302020000030310321122330310113" },
	{ RING_CACHEMOVER, 0,
	  "cache-a.example/10.2.0.1:11211,cache-b.example/10.2.0.2:11211,cache-c.ex"
	  "ample/10.2.0.3:11211,cache-d.example/10.2.0.4:11211",
	  640, 640,
	  "100301012031101221301102030021322310032220111221211223000113020100122011120"
	  "031202002332203332231011333200011321313121030113223101123302231032203212121"
	  "102220120212222012302311233133131031332101313221121112202230103301012121122"
	  "023131200010010320011133201322213221210003312003102001230201301311321200203" },
};
/* Two nodes sharing a point value (birthday search), and a key that lands on it. */
static const struct tie_case tie_cases[] = {
	{ RING_EVCACHE, "10.77.1.140", "10.77.2.51", 3842694406u, "tie-441", 1 },
	{ RING_CACHEMOVER, "10.77.1.140", "10.77.2.51", 3842694406u, "tie-441", 1 },
	{ RING_SPYMEMCACHED, "10.77.0.95", "10.77.1.75", 1734315603u, "tie-1251", 1 },
	{ RING_LIBMEMCACHED, "10.77.0.78", "10.77.0.130", 3008459887u, "tie-622", 0 },
	{ RING_LIBMEMCACHED_MD5, "10.77.1.242", "10.77.3.128", 111117969u, "tie-189", 0 },
	{ RING_LIBMEMCACHED_OAAT, "10.77.7.14", "10.77.7.188", 1947308590u, "tie-1032", 0 },
	{ RING_LIBMEMCACHED_SPY, "10.77.0.126", "10.77.3.163", 620623770u, "tie-551", 0 },
};
/* evcache on 10.0.0.1..3: a key hashing above the largest point (4282637132) and the owner of
 * the smallest point (144763). */
#define WRAP_KEY	"wrap-453"
#define WRAP_OWNER	1
#define WRAP_TOP	4282637132u
#define WRAP_OAAT_KEY	"wrap-98"
#define WRAP_OAAT_OWNER 1
/* EVCache partial keys: md5_u32 of the part hashed. */
static const struct {
	const char *key;
	char delim;
	uint32_t hash;
} partial_vectors[] = {
	{ "movie:123:en", ':', 2672546734u }, { ":abc", ':', 111830947u },
	{ "abc", ':', 2555380112u },	      { "a|b:c", '|', 3111502092u },
	{ "a|b:c", ':', 1096970960u },	      { "|", '|', 3157563577u },
	{ "x:", ':', 1642386589u },
};

/* ---- helpers ---- */

struct ring_fixture {
	struct hashring r;
	unsigned n;
	struct hashring_node nodes[HASHRING_NODES_MAX];
};

static void ring_check(const struct hashring *r)
{
	assert_true(r->npoints > 0);
	for (uint32_t i = 0; i < r->npoints; i++) {
		assert_true(r->points[i].node < r->nnodes);
		if (i > 0)
			assert_true(r->points[i - 1].value < r->points[i].value);
	}
}

static struct ring_fixture *ring_new(const struct hashring_opts *o, const char *list)
{
	char err[ERR_BYTES] = "";
	struct ring_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	if (hashring_parse_nodes(list, f->nodes, HASHRING_NODES_MAX, &f->n, err, sizeof(err)) != 0)
		fail_msg("parse \"%s\": %s", list, err);
	size_t bytes = hashring_memory_bytes(o, f->nodes, f->n);
	assert_true(bytes > 0);
	void *mem = malloc(bytes);
	assert_non_null(mem);
	if (hashring_build(&f->r, o, f->nodes, f->n, mem, bytes, err, sizeof(err)) != 0)
		fail_msg("build %s on \"%s\": %s", hashring_kind_name(o->kind), list, err);
	assert_ptr_equal(f->r.points, mem);
	ring_check(&f->r);
	return f;
}

static void ring_del(struct ring_fixture *f)
{
	free(f->r.points);
	free(f);
}

static struct ring_fixture *ring_of(enum hashring_kind kind, const char *list)
{
	struct hashring_opts o = { .kind = kind };
	return ring_new(&o, list);
}

static unsigned lookup_str(const struct hashring *r, const char *key)
{
	return hashring_lookup(r, (const uint8_t *)key, strlen(key));
}

static uint32_t hash_str(const struct hashring *r, const char *key)
{
	return hashring_key_hash(r, (const uint8_t *)key, strlen(key));
}

static bool same_points(const struct hashring *a, const struct hashring *b)
{
	return a->npoints == b->npoints &&
	       memcmp(a->points, b->points, a->npoints * sizeof(a->points[0])) == 0;
}

static void hex(char out[2 * MD5_DIGEST_BYTES + 1], const uint8_t d[MD5_DIGEST_BYTES])
{
	for (unsigned i = 0; i < MD5_DIGEST_BYTES; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The same xorshift32 stream the Python generator used. */
static void md5_input(uint8_t *buf, size_t n)
{
	uint32_t x = 2463534242u ^ (uint32_t)(n * 0x9e3779b9u);
	if (x == 0)
		x = 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)(x >> 24);
	}
}

static size_t model_key(char *buf, size_t cap, unsigned i)
{
	int n = i % 3 == 2 ? snprintf(buf, cap, "\xc3\xa9t\xc3\xa9-%u", i)
			   : snprintf(buf, cap, "user:%u:%08x", i, (uint32_t)(i * 2654435761u));
	return (size_t)n;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random keys, 1..250 bytes, printable; a quarter of them with bytes >= 0x80 too. */
static size_t random_key(uint64_t *s, uint8_t *key)
{
	size_t len = 1 + rng_next(s) % TEST_KEY_MAX;
	bool high = rng_next(s) % 4 == 0;
	for (size_t i = 0; i < len; i++) {
		uint64_t v = rng_next(s);
		key[i] = high && v % 5 == 0 ? (uint8_t)(0x80 + (v >> 8) % 0x80)
					    : (uint8_t)(0x21 + (v >> 8) % 0x5e);
	}
	return len;
}

/* ---- MD5 and the key hashes ---- */

static void test_md5_rfc1321(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(md5_rfc) / sizeof(md5_rfc[0]); i++) {
		uint8_t d[MD5_DIGEST_BYTES];
		char h[2 * MD5_DIGEST_BYTES + 1];
		mcw_md5(md5_rfc[i].in, strlen(md5_rfc[i].in), d);
		hex(h, d);
		assert_string_equal(h, md5_rfc[i].hex);
	}
	uint8_t d[MD5_DIGEST_BYTES];
	char h[2 * MD5_DIGEST_BYTES + 1];
	mcw_md5(NULL, 0, d);
	hex(h, d);
	assert_string_equal(h, "d41d8cd98f00b204e9800998ecf8427e");
}

static void test_md5_every_length(void **state)
{
	(void)state;
	uint8_t buf[301 + 1];
	for (size_t n = 0; n <= 300; n++) {
		/* at offset 1 too: the input need not be aligned */
		for (size_t off = 0; off <= 1; off++) {
			uint8_t d[MD5_DIGEST_BYTES];
			char h[2 * MD5_DIGEST_BYTES + 1];
			md5_input(buf + off, n);
			mcw_md5(buf + off, n, d);
			hex(h, d);
			if (strcmp(h, md5_random_hex[n]) != 0)
				fail_msg("md5 of %zu bytes: %s, hashlib says %s", n, h,
					 md5_random_hex[n]);
		}
	}
}

static void test_key_hash_words(void **state)
{
	(void)state;
	assert_int_equal(hashring_md5_u32((const uint8_t *)"", 0, 0), 0xd98c1dd4u);
	assert_int_equal(hashring_md5_u32((const uint8_t *)"", 0, 1), 0x04b2008fu);
	assert_int_equal(hashring_md5_u32((const uint8_t *)"", 0, 3), 0x7e42f8ecu);
	assert_int_equal(hashring_md5_u32((const uint8_t *)"foo", 3, 0), 3675831724u);
	for (size_t i = 0; i < sizeof(oaat_vectors) / sizeof(oaat_vectors[0]); i++) {
		uint32_t h =
		    hashring_oaat((const uint8_t *)oaat_vectors[i].key, oaat_vectors[i].len);
		if (h != oaat_vectors[i].hash)
			fail_msg("one-at-a-time vector %zu: %u, model says %u", i, h,
				 oaat_vectors[i].hash);
	}
}

/* ---- the reference and the model ---- */

static void test_reference_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ref_vectors) / sizeof(ref_vectors[0]); i++) {
		const struct ref_vector *v = &ref_vectors[i];
		char list[128];
		snprintf(list, sizeof(list), "10.0.0.1:%u,10.0.0.2:%u,10.0.0.3:%u", v->port,
			 v->port, v->port);
		struct ring_fixture *f = ring_of(v->kind, list);
		uint32_t h = hashring_key_hash(&f->r, (const uint8_t *)v->key, v->len);
		unsigned node = hashring_lookup(&f->r, (const uint8_t *)v->key, v->len);
		if (h != v->hash || node != v->node)
			fail_msg("%s key %zu (\"%.20s\"): hash %u node %u, reference %u node %u",
				 v->variant, i, v->key, h, node, v->hash, v->node);
		ring_del(f);
	}
}

static void test_model_cases(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(model_cases) / sizeof(model_cases[0]); c++) {
		const struct model_case *m = &model_cases[c];
		struct hashring_opts o = { .kind = m->kind, .points = m->points };
		struct ring_fixture *f = ring_new(&o, m->nodes);
		size_t raw =
		    hashring_memory_bytes(&o, f->nodes, f->n) / sizeof(struct hashring_point);
		assert_int_equal(raw, m->raw_points);
		assert_int_equal(f->r.npoints, m->distinct_points);
		assert_int_equal(strlen(m->owners), MODEL_KEYS);
		for (unsigned i = 0; i < MODEL_KEYS; i++) {
			char key[64];
			size_t len = model_key(key, sizeof(key), i);
			unsigned node = hashring_lookup(&f->r, (const uint8_t *)key, len);
			if (node != (unsigned)(m->owners[i] - '0'))
				fail_msg("case %zu (%s, %u points), key \"%s\": node %u, model %c",
					 c, hashring_kind_name(m->kind), m->points, key, node,
					 m->owners[i]);
		}
		ring_del(f);
	}
}

/* ---- the real libmemcached ---- */

/* Set up exactly as the reference's C harness: the hash BEFORE the distribution (the
 * continuum is built when servers are added), then the servers in list order. */
static memcached_st *libmc_new(enum hashring_kind kind, const struct hashring_node *nodes,
			       unsigned n)
{
	memcached_st *m = memcached_create(NULL);
	assert_non_null(m);
	if (kind != RING_LIBMEMCACHED_OAAT)
		assert_int_equal(
		    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5),
		    MEMCACHED_SUCCESS);
	memcached_return_t rc;
	if (kind == RING_LIBMEMCACHED)
		rc = memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
	else if (kind == RING_LIBMEMCACHED_SPY)
		rc = memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION,
					    MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA_SPY);
	else
		rc = memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA, 1);
	assert_int_equal(rc, MEMCACHED_SUCCESS);
	for (unsigned i = 0; i < n; i++) {
		rc = nodes[i].weight > 1 ? memcached_server_add_with_weight(
					       m, nodes[i].host, nodes[i].port, nodes[i].weight)
					 : memcached_server_add(m, nodes[i].host, nodes[i].port);
		assert_int_equal(rc, MEMCACHED_SUCCESS);
	}
	assert_int_equal(memcached_server_count(m), n);
	return m;
}

/* Compares owners (and key hashes) with libmemcached on random keys; returns mismatches. */
static unsigned libmc_compare(enum hashring_kind kind, const char *list, unsigned nkeys)
{
	struct ring_fixture *f = ring_of(kind, list);
	memcached_st *m = libmc_new(kind, f->nodes, f->n);
	/* libhashkit's "default" hash is one-at-a-time */
	memcached_hash_t algo =
	    kind == RING_LIBMEMCACHED_OAAT ? MEMCACHED_HASH_DEFAULT : MEMCACHED_HASH_MD5;
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)kind;
	unsigned bad_owner = 0, bad_hash = 0;
	uint8_t key[TEST_KEY_MAX];
	for (unsigned i = 0; i < nkeys; i++) {
		size_t len = random_key(&seed, key);
		uint32_t want = memcached_generate_hash(m, (const char *)key, len);
		bad_owner += hashring_lookup(&f->r, key, len) != want;
		bad_hash += hashring_key_hash(&f->r, key, len) !=
			    memcached_generate_hash_value((const char *)key, len, algo);
	}
	printf("  %-17s %2u nodes, %6u points: %u keys vs libmemcached, %u owner and %u hash "
	       "mismatches\n",
	       hashring_kind_name(kind), f->n, f->r.npoints, nkeys, bad_owner, bad_hash);
	memcached_free(m);
	ring_del(f);
	return bad_owner + bad_hash;
}

static const char *const libmc_lists[] = {
	"10.0.0.1,10.0.0.2,10.0.0.3",
	/* mixed ports, some DNS-style names (libmemcached hashes the name, unresolved) */
	("10.4.0.1:11211,mc-b.internal:11311,10.4.0.3,10.4.0.4:12000,mc-e.internal,10.4.0.6:11211,"
	 "10.4.0.7:22122,10.4.0.8,mc-i.internal:11212,10.4.0.10"),
	"10.0.0.9", /* one node: libmemcached skips hashing, every key is node 0 */
};

static void test_libmemcached_kinds(void **state)
{
	(void)state;
	const enum hashring_kind kinds[] = { RING_LIBMEMCACHED, RING_LIBMEMCACHED_MD5,
					     RING_LIBMEMCACHED_OAAT, RING_LIBMEMCACHED_SPY };
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (size_t l = 0; l < sizeof(libmc_lists) / sizeof(libmc_lists[0]); l++) {
			unsigned keys = l == 2 ? LIBMC_KEYS / 10 : LIBMC_KEYS;
			assert_int_equal(libmc_compare(kinds[k], libmc_lists[l], keys), 0);
		}
	}
}

static void test_libmemcached_weighted(void **state)
{
	(void)state;
	assert_int_equal(libmc_compare(RING_LIBMEMCACHED,
				       "10.5.0.1=1,10.5.0.2=2,10.5.0.3=3,"
				       "10.5.0.4=4",
				       LIBMC_KEYS),
			 0);
	/* float rounding: exact arithmetic would give 10.5.1.4 and 10.5.1.5 four more points
	 * each and 10.5.1.3 four more; libmemcached computes in float and gives 60, 92, 252 */
	assert_int_equal(libmc_compare(RING_LIBMEMCACHED,
				       "10.5.1.1=13,10.5.1.2=11,10.5.1.3=16,"
				       "10.5.1.4=4,10.5.1.5=6",
				       LIBMC_KEYS),
			 0);
	/* mixed ports and a heavy node, so light ones get few points */
	assert_int_equal(libmc_compare(RING_LIBMEMCACHED,
				       "10.5.2.1:11311=1,10.5.2.2=1,mc-c.internal:11212=50,"
				       "10.5.2.4=7,10.5.2.5:11211=2",
				       LIBMC_KEYS),
			 0);
}

/* ---- rules ---- */

static void test_tie_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tie_cases) / sizeof(tie_cases[0]); i++) {
		const struct tie_case *t = &tie_cases[i];
		char ab[64], ba[64];
		snprintf(ab, sizeof(ab), "%s,%s", t->a, t->b);
		snprintf(ba, sizeof(ba), "%s,%s", t->b, t->a);
		struct ring_fixture *f = ring_of(t->kind, ab);
		struct ring_fixture *g = ring_of(t->kind, ba);
		size_t raw =
		    hashring_memory_bytes(&f->r.o, f->nodes, f->n) / sizeof(struct hashring_point);
		assert_true(f->r.npoints < raw); /* the shared value is kept once */
		/* the model's winner; swapping the list swaps the winning node, not its place */
		assert_int_equal(lookup_str(&f->r, t->key), t->winner);
		assert_int_equal(lookup_str(&g->r, t->key), t->winner);
		bool later = t->kind == RING_EVCACHE || t->kind == RING_CACHEMOVER ||
			     t->kind == RING_SPYMEMCACHED;
		assert_int_equal(t->winner, later ? 1 : 0);
		/* the point itself, with its owner */
		assert_int_equal(hashring_lookup_hash(&f->r, t->value), t->winner);
		assert_int_equal(hashring_lookup_hash(&g->r, t->value), t->winner);
		assert_true(hash_str(&f->r, t->key) <= t->value);
		if (!later) { /* and libmemcached agrees, in both orders */
			memcached_st *m = libmc_new(t->kind, f->nodes, f->n);
			assert_int_equal(memcached_generate_hash(m, t->key, strlen(t->key)),
					 t->winner);
			memcached_free(m);
			m = libmc_new(t->kind, g->nodes, g->n);
			assert_int_equal(memcached_generate_hash(m, t->key, strlen(t->key)),
					 t->winner);
			memcached_free(m);
		}
		ring_del(f);
		ring_del(g);
	}
}

static void test_lookup_bounds(void **state)
{
	(void)state;
	struct hashring_point pts[] = { { 100, 2 }, { 200, 0 }, { 300, 1 } };
	struct hashring r = {
		.o = { .kind = RING_EVCACHE }, .nnodes = 3, .points = pts, .npoints = 3
	};
	assert_int_equal(hashring_lookup_hash(&r, 0), 2);
	assert_int_equal(hashring_lookup_hash(&r, 100), 2); /* >=, not > */
	assert_int_equal(hashring_lookup_hash(&r, 101), 0);
	assert_int_equal(hashring_lookup_hash(&r, 200), 0);
	assert_int_equal(hashring_lookup_hash(&r, 201), 1);
	assert_int_equal(hashring_lookup_hash(&r, 300), 1);
	assert_int_equal(hashring_lookup_hash(&r, 301), 2); /* wraps to the smallest */
	assert_int_equal(hashring_lookup_hash(&r, UINT32_MAX), 2);
	r.npoints = 1;
	assert_int_equal(hashring_lookup_hash(&r, 0), 2);
	assert_int_equal(hashring_lookup_hash(&r, UINT32_MAX), 2);
	struct hashring_point edge[] = { { 0, 1 }, { UINT32_MAX, 0 } };
	struct hashring e = {
		.o = { .kind = RING_EVCACHE }, .nnodes = 2, .points = edge, .npoints = 2
	};
	assert_int_equal(hashring_lookup_hash(&e, 0), 1);
	assert_int_equal(hashring_lookup_hash(&e, 1), 0);
	assert_int_equal(hashring_lookup_hash(&e, UINT32_MAX), 0);
	/* every size up to 64 against a linear scan */
	struct hashring_point many[64];
	for (uint32_t n = 1; n <= 64; n++) {
		for (uint32_t i = 0; i < n; i++)
			many[i] = (struct hashring_point){ .value = 10 * i + 5, .node = i };
		struct hashring m = { .nnodes = n, .points = many, .npoints = n };
		for (uint32_t h = 0; h <= 10 * n + 10; h++) {
			uint32_t want = h > 10 * (n - 1) + 5 ? 0 : (h + 4) / 10;
			assert_int_equal(hashring_lookup_hash(&m, h), want);
		}
	}
}

static void test_wrap_around(void **state)
{
	(void)state;
	struct ring_fixture *f = ring_of(RING_EVCACHE, "10.0.0.1,10.0.0.2,10.0.0.3");
	assert_int_equal(f->r.points[f->r.npoints - 1].value, WRAP_TOP);
	assert_true(hash_str(&f->r, WRAP_KEY) > WRAP_TOP);
	assert_int_equal(lookup_str(&f->r, WRAP_KEY), WRAP_OWNER);
	ring_del(f);
	f = ring_of(RING_LIBMEMCACHED_OAAT, "10.0.0.1,10.0.0.2,10.0.0.3");
	assert_true(hash_str(&f->r, WRAP_OAAT_KEY) > f->r.points[f->r.npoints - 1].value);
	assert_int_equal(lookup_str(&f->r, WRAP_OAAT_KEY), WRAP_OAAT_OWNER);
	ring_del(f);
}

static void test_client_equivalences(void **state)
{
	(void)state;
	const char *l11211 = "10.0.0.1:11211,10.0.0.2,10.0.0.3:11211";
	const char *l11311 = "10.0.0.1:11311,10.0.0.2:11311,10.0.0.3:11311";
	const char *mixed = "10.0.0.1:11211,10.0.0.2:11311,10.0.0.3:11211";
	struct ring_fixture *ev = ring_of(RING_EVCACHE, l11211);
	struct ring_fixture *cm = ring_of(RING_CACHEMOVER, l11211);
	struct ring_fixture *ev11311 = ring_of(RING_EVCACHE, l11311);
	struct ring_fixture *evmixed = ring_of(RING_EVCACHE, mixed);
	struct ring_fixture *cm11311 = ring_of(RING_CACHEMOVER, l11311);
	struct ring_fixture *cmmixed = ring_of(RING_CACHEMOVER, mixed);
	assert_int_equal(ev->r.npoints, 480);
	assert_true(same_points(&ev->r, &cm->r));      /* all on 11211: the same ring */
	assert_true(same_points(&ev->r, &ev11311->r)); /* evcache ignores the port */
	assert_true(same_points(&ev->r, &evmixed->r));
	assert_false(same_points(&ev->r, &cm11311->r)); /* cachemover does not */
	assert_false(same_points(&ev->r, &cmmixed->r));
	struct hashring_opts o100 = { .kind = RING_EVCACHE, .points = 100 };
	struct ring_fixture *ev100 = ring_new(&o100, l11211);
	o100.kind = RING_CACHEMOVER;
	struct ring_fixture *cm100 = ring_new(&o100, l11211);
	assert_int_equal(ev100->r.npoints, 300);
	assert_int_equal(ev100->r.o.points, 100);
	assert_int_equal(ev->r.o.points, HASHRING_POINTS_DEFAULT);
	assert_true(same_points(&ev100->r, &cm100->r));
	assert_false(same_points(&ev100->r, &ev->r));
	/* spymemcached bare IPs on 11311 write "ip:port-i" like libmemcached weighted */
	struct ring_fixture *spy = ring_of(RING_SPYMEMCACHED, l11311);
	struct ring_fixture *lw = ring_of(RING_LIBMEMCACHED, l11311);
	struct ring_fixture *spy11211 = ring_of(RING_SPYMEMCACHED, l11211);
	struct ring_fixture *lw11211 = ring_of(RING_LIBMEMCACHED, l11211);
	assert_true(same_points(&spy->r, &lw->r));
	assert_false(same_points(&spy11211->r, &lw11211->r));
	/* a hostname changes spymemcached's strings but not libmemcached's */
	struct ring_fixture *spyn = ring_of(RING_SPYMEMCACHED, "a/10.0.0.1:11311,b/10.0.0.2:11311,"
							       "c/10.0.0.3:11311");
	struct ring_fixture *lwn = ring_of(RING_LIBMEMCACHED, "a/10.0.0.1:11311,b/10.0.0.2:11311,"
							      "c/10.0.0.3:11311");
	assert_false(same_points(&spyn->r, &spy->r));
	assert_true(same_points(&lwn->r, &lw->r));
	/* one node owns every key */
	struct ring_fixture *one = ring_of(RING_EVCACHE, "10.0.0.7");
	assert_int_equal(lookup_str(&one->r, "anything"), 0);
	assert_int_equal(hashring_lookup_hash(&one->r, UINT32_MAX), 0);
	struct ring_fixture *all[] = { ev,  cm, ev11311,  evmixed, cm11311, cmmixed, ev100, cm100,
				       spy, lw, spy11211, lw11211, spyn,    lwn,     one };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		ring_del(all[i]);
}

static void test_partial_key(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(partial_vectors) / sizeof(partial_vectors[0]); i++) {
		struct hashring_opts o = { .kind = RING_EVCACHE,
					   .partial_delim = partial_vectors[i].delim };
		struct ring_fixture *f = ring_new(&o, "10.0.0.1,10.0.0.2,10.0.0.3");
		assert_int_equal(hash_str(&f->r, partial_vectors[i].key), partial_vectors[i].hash);
		ring_del(f);
	}
	struct hashring_opts o = { .kind = RING_EVCACHE, .partial_delim = ':' };
	struct ring_fixture *p = ring_new(&o, "10.0.0.1,10.0.0.2,10.0.0.3");
	struct ring_fixture *w = ring_of(RING_EVCACHE, "10.0.0.1,10.0.0.2,10.0.0.3");
	assert_int_equal(hash_str(&w->r, "movie:123:en"),
			 hashring_md5_u32((const uint8_t *)"movie:123:en", 12, 0));
	assert_int_not_equal(hash_str(&w->r, "movie:123:en"), hash_str(&p->r, "movie:123:en"));
	/* every key of one prefix lands on the prefix's node */
	unsigned prefix_node = lookup_str(&w->r, "movie");
	unsigned spread[3] = { 0 };
	for (unsigned i = 0; i < 300; i++) {
		char key[32];
		snprintf(key, sizeof(key), "movie:%u", i);
		assert_int_equal(lookup_str(&p->r, key), prefix_node);
		spread[lookup_str(&w->r, key)]++;
	}
	assert_true(spread[0] > 0 && spread[1] > 0 && spread[2] > 0); /* without: spread out */
	assert_int_equal(hashring_key_hash(&p->r, NULL, 0), 0xd98c1dd4u);
	ring_del(p);
	ring_del(w);
}

/* ---- node lists and options ---- */

static void expect_parse_error(const char *list, unsigned max, const char *words)
{
	static struct hashring_node nodes[HASHRING_NODES_MAX];
	char err[ERR_BYTES] = "";
	unsigned n = 12345;
	int ret = hashring_parse_nodes(list, nodes, max, &n, err, sizeof(err));
	if (ret != -EINVAL || strstr(err, words) == NULL)
		fail_msg("\"%.60s\": ret %d, err \"%s\", wanted -EINVAL and \"%s\"", list, ret, err,
			 words);
	assert_int_equal(n, 12345);
}

static void test_parse_nodes(void **state)
{
	(void)state;
	static struct hashring_node nodes[HASHRING_NODES_MAX];
	char err[ERR_BYTES];
	unsigned n = 0;
	assert_int_equal(hashring_parse_nodes(" 10.0.0.1 ,b-2.example/10.0.0.2:11311=3,\tc_3:1 ",
					      nodes, HASHRING_NODES_MAX, &n, err, sizeof(err)),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(nodes[0].name, "10.0.0.1");
	assert_string_equal(nodes[0].hostname, "10.0.0.1");
	assert_string_equal(nodes[0].host, "10.0.0.1");
	assert_int_equal(nodes[0].port, 11211);
	assert_int_equal(nodes[0].weight, 1);
	assert_string_equal(nodes[1].name, "b-2.example/10.0.0.2:11311");
	assert_string_equal(nodes[1].hostname, "b-2.example");
	assert_string_equal(nodes[1].host, "10.0.0.2");
	assert_int_equal(nodes[1].port, 11311);
	assert_int_equal(nodes[1].weight, 3);
	assert_string_equal(nodes[2].name, "c_3:1");
	assert_int_equal(nodes[2].port, 1);

	expect_parse_error("", 8, "node list is empty");
	expect_parse_error("  ", 8, "node list is empty");
	expect_parse_error("a,,b", 8, "entry 2 is empty");
	expect_parse_error("a,", 8, "entry 2 is empty");
	expect_parse_error(",a", 8, "entry 1 is empty");
	expect_parse_error("a, ,b", 8, "entry 2 is empty");
	expect_parse_error("a,b:0", 8,
			   "entry 2 (\"b:0\"): port \"0\" is not a number from 1 to 65535");
	expect_parse_error("a:65536", 8, "port \"65536\"");
	expect_parse_error("a:x1", 8, "port \"x1\"");
	expect_parse_error("a:", 8, "port \"\"");
	expect_parse_error("a:-1", 8, "port \"-1\"");
	expect_parse_error("a:1:2", 8, "more than one ':'");
	expect_parse_error("a=0", 8, "weight \"0\" is not a whole number from 1 to 1000000");
	expect_parse_error("a=", 8, "weight \"\"");
	expect_parse_error("a=1.5", 8, "weight \"1.5\"");
	expect_parse_error("a=1000001", 8, "weight \"1000001\"");
	expect_parse_error("a:1,b,a:1", 8, "entry 3 (\"a:1\") is the same node as entry 1");
	expect_parse_error(
	    "10.0.0.1,10.0.0.1:11211", 8,
	    "entry 2 (\"10.0.0.1:11211\") is the same node as entry 1 (\"10.0.0.1\")");
	expect_parse_error("mc-a,x/MC-A", 8, "same node as entry 1");
	expect_parse_error("/10.0.0.1", 8, "the hostname before '/' is empty");
	expect_parse_error("a/", 8, "the host is empty");
	expect_parse_error("a b", 8, "entry 1 (\"a b\"): the host is empty or has a character");
	expect_parse_error("a/b/c", 8, "the host is empty or has a character");
	expect_parse_error("[::1]:11211", 8, "IPv6 addresses are not supported");
	expect_parse_error("::1", 8, "IPv6 addresses are not supported");
	expect_parse_error("a,b,c", 2, "more than 2 nodes");

	char name[300];
	memset(name, 'h', 200);
	name[200] = '\0';
	expect_parse_error(name, 8, "longer than 127 bytes");

	/* exactly HASHRING_NODES_MAX nodes parse; one more does not */
	static char big[HASHRING_NODES_MAX * 16 + 32];
	size_t used = 0;
	for (unsigned i = 0; i < HASHRING_NODES_MAX; i++)
		used += (size_t)snprintf(big + used, sizeof(big) - used, "%s10.9.%u.%u",
					 i ? "," : "", i / 256, i % 256);
	assert_int_equal(hashring_parse_nodes(big, nodes, HASHRING_NODES_MAX, &n, err, sizeof(err)),
			 0);
	assert_int_equal(n, HASHRING_NODES_MAX);
	snprintf(big + used, sizeof(big) - used, ",10.10.0.1");
	expect_parse_error(big, HASHRING_NODES_MAX, "more than 1024 nodes");
}

static void test_find_node(void **state)
{
	(void)state;
	struct hashring_node nodes[3];
	unsigned n;
	char err[ERR_BYTES];
	assert_int_equal(hashring_parse_nodes("10.0.0.1,b/10.0.0.2:11311=2,Mc-C", nodes, 3, &n, err,
					      sizeof(err)),
			 0);
	assert_int_equal(hashring_find_node(nodes, n, "10.0.0.1"), 0);
	assert_int_equal(hashring_find_node(nodes, n, "10.0.0.1:11211"), 0);
	assert_int_equal(hashring_find_node(nodes, n, " 10.0.0.1:11211 "), 0);
	assert_int_equal(hashring_find_node(nodes, n, "10.0.0.2:11311"), 1);
	assert_int_equal(hashring_find_node(nodes, n, "b/10.0.0.2:11311"), 1);
	assert_int_equal(hashring_find_node(nodes, n, "other/10.0.0.2:11311=5"), 1);
	assert_int_equal(hashring_find_node(nodes, n, "mc-c:11211"), 2);
	assert_int_equal(hashring_find_node(nodes, n, "10.0.0.2"), -1); /* port 11211 */
	assert_int_equal(hashring_find_node(nodes, n, "10.0.0.3"), -1);
	assert_int_equal(hashring_find_node(nodes, n, "10.0.0.1:0"), -1);
	assert_int_equal(hashring_find_node(nodes, n, ""), -1);
	assert_int_equal(hashring_find_node(nodes, n, "not a node"), -1);
}

static void expect_build_error(const struct hashring_opts *o, const char *list, int want,
			       const char *words)
{
	static struct hashring_node nodes[HASHRING_NODES_MAX];
	char err[ERR_BYTES] = "";
	unsigned n;
	assert_int_equal(
	    hashring_parse_nodes(list, nodes, HASHRING_NODES_MAX, &n, err, sizeof(err)), 0);
	static struct hashring_point mem[64 * 1024];
	struct hashring r;
	int ret = hashring_build(&r, o, nodes, n, mem, sizeof(mem), err, sizeof(err));
	if (ret != want || strstr(err, words) == NULL)
		fail_msg("%s on \"%s\": ret %d, err \"%s\", wanted %d and \"%s\"",
			 hashring_kind_name(o->kind), list, ret, err, want, words);
	assert_int_equal(r.npoints, 0);
	if (want == -EINVAL)
		assert_int_equal(hashring_memory_bytes(o, nodes, n), 0);
}

static void test_build_errors(void **state)
{
	(void)state;
	const char *three = "10.0.0.1,10.0.0.2,10.0.0.3";
	struct hashring_opts o = { .kind = RING_EVCACHE, .points = 6 };
	expect_build_error(&o, three, -EINVAL, "6 points per node: evcache needs a multiple of 4");
	o.points = HASHRING_POINTS_PER_NODE_MAX + 4;
	expect_build_error(&o, three, -EINVAL, "multiple of 4 from 4 to 4096");
	o = (struct hashring_opts){ .kind = RING_LIBMEMCACHED_MD5, .points = 160 };
	expect_build_error(&o, three, -EINVAL, "libmemcached-md5 fixes the points per node");
	o = (struct hashring_opts){ .kind = RING_CACHEMOVER, .partial_delim = ':' };
	expect_build_error(&o, three, -EINVAL, "cachemover clients hash the whole key");
	o = (struct hashring_opts){ .kind = RING_EVCACHE, .partial_delim = (char)0xc3 };
	expect_build_error(&o, three, -EINVAL, "must be an ASCII byte");
	o = (struct hashring_opts){ .kind = (enum hashring_kind)99 };
	expect_build_error(&o, three, -EINVAL, "unknown ring kind 99");
	o = (struct hashring_opts){ .kind = RING_EVCACHE };
	expect_build_error(&o, "10.0.0.1,10.0.0.2=2", -EINVAL,
			   "node 1 (\"10.0.0.2\") has weight 2, but evcache rings have no weights");
	o.kind = RING_LIBMEMCACHED_SPY;
	expect_build_error(&o, "10.0.0.1=3", -EINVAL, "libmemcached-spy rings have no weights");
	o.kind = RING_EVCACHE;
	expect_build_error(&o, "10.0.0.1:11211,10.0.0.2,10.0.0.1:11311", -EINVAL,
			   "nodes 0 (\"10.0.0.1:11211\") and 2 (\"10.0.0.1:11311\") give the same "
			   "evcache node string");
	expect_build_error(&o, "10.0.0.1:11211,10.0.0.1:11311", -EINVAL,
			   "EVCache ignores the port");

	/* the same list is fine where the port is written; hostnames keep evcache apart */
	struct ring_fixture *f = ring_of(RING_CACHEMOVER, "10.0.0.1:11211,10.0.0.1:11311");
	ring_del(f);
	f = ring_of(RING_EVCACHE, "a/10.0.0.1:11211,b/10.0.0.1:11311");
	ring_del(f);

	/* no nodes; too little memory */
	struct hashring r;
	char err[ERR_BYTES];
	assert_int_equal(hashring_build(&r, &o, NULL, 0, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "a ring needs 1 to 1024 nodes, not 0"));
	struct hashring_node nodes[3];
	unsigned n;
	assert_int_equal(hashring_parse_nodes(three, nodes, 3, &n, err, sizeof(err)), 0);
	size_t need = hashring_memory_bytes(&o, nodes, n);
	assert_int_equal(need, 480 * sizeof(struct hashring_point));
	void *mem = malloc(need);
	assert_int_equal(hashring_build(&r, &o, nodes, n, mem, need - 1, err, sizeof(err)),
			 -ENOSPC);
	assert_non_null(strstr(err, "needs 3840 bytes of point storage, got 3839"));
	assert_int_equal(hashring_build(&r, &o, nodes, n, mem, need, NULL, 0), 0);
	/* a hand-filled node with weight 0 is refused too */
	nodes[1].weight = 0;
	assert_int_equal(hashring_build(&r, &o, nodes, n, mem, need, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "weight 0 is not from 1 to 1000000"));
	free(mem);
}

static void test_memory_bytes(void **state)
{
	(void)state;
	struct {
		enum hashring_kind kind;
		unsigned points;
		const char *list;
		size_t raw;
	} c[] = {
		{ RING_EVCACHE, 0, "10.0.0.1,10.0.0.2,10.0.0.3", 480 },
		{ RING_SPYMEMCACHED, 100, "10.0.0.1,10.0.0.2,10.0.0.3", 300 },
		{ RING_CACHEMOVER, 4, "10.0.0.1", 4 },
		{ RING_LIBMEMCACHED_MD5, 0, "10.0.0.1,10.0.0.2,10.0.0.3", 300 },
		{ RING_LIBMEMCACHED_OAAT, 0, "10.0.0.1,10.0.0.2", 200 },
		{ RING_LIBMEMCACHED_SPY, 0, "10.0.0.1", 100 },
		{ RING_LIBMEMCACHED, 0, "10.0.0.1,10.0.0.2,10.0.0.3", 480 },
		{ RING_LIBMEMCACHED, 0, "a=1,b=2,c=3,d=4", 64 + 128 + 192 + 256 },
		/* float: 208 + 176 + 252 + 60 + 92 (exact arithmetic: 208 + 176 + 256 + 64 + 96) */
		{ RING_LIBMEMCACHED, 0, "a=13,b=11,c=16,d=4,e=6", 788 },
		/* too light for a point: 1/1000001 * 40 * 2 < 1 digest; and 79.99992 -> 79 */
		{ RING_LIBMEMCACHED, 0, "a=1,b=1000000", 0 + 316 },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct hashring_node nodes[8];
		unsigned n;
		char err[ERR_BYTES];
		assert_int_equal(hashring_parse_nodes(c[i].list, nodes, 8, &n, err, sizeof(err)),
				 0);
		struct hashring_opts o = { .kind = c[i].kind, .points = c[i].points };
		if (hashring_memory_bytes(&o, nodes, n) != c[i].raw * sizeof(struct hashring_point))
			fail_msg("%s \"%s\": %zu bytes, expected %zu points",
				 hashring_kind_name(o.kind), c[i].list,
				 hashring_memory_bytes(&o, nodes, n), c[i].raw);
	}
	/* the node with no points owns no key */
	struct ring_fixture *f = ring_of(RING_LIBMEMCACHED, "a=1,b=1000000");
	for (uint32_t i = 0; i < f->r.npoints; i++)
		assert_int_equal(f->r.points[i].node, 1);
	ring_del(f);
}

static void test_kind_names(void **state)
{
	(void)state;
	const char *names[] = { "evcache",	   "cachemover",       "spymemcached",
				"libmemcached",	   "libmemcached-md5", "libmemcached-oaat",
				"libmemcached-spy" };
	const enum hashring_kind kinds[] = { RING_EVCACHE,	    RING_CACHEMOVER,
					     RING_SPYMEMCACHED,	    RING_LIBMEMCACHED,
					     RING_LIBMEMCACHED_MD5, RING_LIBMEMCACHED_OAAT,
					     RING_LIBMEMCACHED_SPY };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		enum hashring_kind k = RING_EVCACHE;
		assert_int_equal(hashring_kind_parse(names[i], &k), 0);
		assert_int_equal(k, kinds[i]);
		assert_string_equal(hashring_kind_name(kinds[i]), names[i]);
	}
	enum hashring_kind k = RING_SPYMEMCACHED;
	assert_int_equal(hashring_kind_parse("ketama", &k), -EINVAL);
	assert_int_equal(hashring_kind_parse("EVCache", &k), -EINVAL);
	assert_int_equal(hashring_kind_parse("", &k), -EINVAL);
	assert_int_equal(k, RING_SPYMEMCACHED);
}

/* ---- speed (printed, not asserted: machines differ) ---- */

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_lookup_spread(void **state)
{
	(void)state;
	static char list[SPEED_NODES * 24];
	size_t used = 0;
	for (unsigned i = 0; i < SPEED_NODES; i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s10.20.%u.%u:11211",
					 i ? "," : "", i / 200, i % 200 + 1);
	struct ring_fixture *f = ring_of(RING_EVCACHE, list);
	/* keys as a dump yields them: ~30 bytes, packed one after another */
	enum { KEY_BYTES = 32 };
	char *keys = malloc((size_t)SPEED_KEYS * KEY_BYTES);
	uint8_t *lens = malloc(SPEED_KEYS);
	assert_true(keys != NULL && lens != NULL);
	for (unsigned i = 0; i < SPEED_KEYS; i++)
		lens[i] = (uint8_t)snprintf(keys + (size_t)i * KEY_BYTES, KEY_BYTES,
					    "app:user:%u:%08x", i, i * 2654435761u);
	unsigned counts[SPEED_NODES] = { 0 };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < SPEED_KEYS; i++)
		counts[hashring_lookup(&f->r, (const uint8_t *)keys + (size_t)i * KEY_BYTES,
				       lens[i])]++;
	double whole = seconds_since(&t0);
	uint64_t seed = 42;
	unsigned sink = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < SPEED_KEYS; i++)
		sink += hashring_lookup_hash(&f->r, (uint32_t)rng_next(&seed));
	double search = seconds_since(&t0);
	unsigned lo = SPEED_KEYS, hi = 0;
	for (unsigned i = 0; i < SPEED_NODES; i++) {
		lo = counts[i] < lo ? counts[i] : lo;
		hi = counts[i] > hi ? counts[i] : hi;
	}
	printf("  evcache, %u nodes, %u points: %.2f M keys/s (md5 + search), %.1f M "
	       "searches/s; keys per node %u..%u (%u)\n",
	       SPEED_NODES, f->r.npoints, SPEED_KEYS / whole / 1e6, SPEED_KEYS / search / 1e6, lo,
	       hi, sink % 2);
	assert_true(lo > 0); /* every node owns some keys */
	free(keys);
	free(lens);
	ring_del(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md5_rfc1321),
		cmocka_unit_test(test_md5_every_length),
		cmocka_unit_test(test_key_hash_words),
		cmocka_unit_test(test_reference_vectors),
		cmocka_unit_test(test_model_cases),
		cmocka_unit_test(test_libmemcached_kinds),
		cmocka_unit_test(test_libmemcached_weighted),
		cmocka_unit_test(test_tie_rules),
		cmocka_unit_test(test_lookup_bounds),
		cmocka_unit_test(test_wrap_around),
		cmocka_unit_test(test_client_equivalences),
		cmocka_unit_test(test_partial_key),
		cmocka_unit_test(test_parse_nodes),
		cmocka_unit_test(test_find_node),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_memory_bytes),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_lookup_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
